"""French sentences: gender agreement, elision (l', qu', d'), bel/nouvel/vieil before a
vowel, adjectives before or after the noun, "est-ce que" questions, French spacing before
? ! : and « », numbers up to quatre-vingt-dix-neuf."""

from __future__ import annotations

import re

from .base import (
    ANIMAL_VERBS,
    adjectives_for,
    capitalize,
    chance,
    count,
    finish,
    join,
    keyed,
    pick,
    table,
    verb_and_object,
    words,
)

HUMANS = table("""
m:garçon:garçons; f:fille:filles; m:enfant:enfants; f:femme:femmes; m:homme:hommes;
m:voisin:voisins; f:voisine:voisines; m:boulanger:boulangers; f:boulangère:boulangères;
m:chauffeur:chauffeurs; f:chanteuse:chanteuses; f:infirmière:infirmières;
m:cuisinier:cuisiniers; f:grand-mère:grands-mères; m:grand-père:grands-pères; m:ami:amis;
f:amie:amies; f:sœur:sœurs; m:frère:frères; m:étudiant:étudiants; f:étudiante:étudiantes;
m:facteur:facteurs; f:directrice:directrices; m:oncle:oncles; f:tante:tantes;
m:médecin:médecins; m:professeur:professeurs
""", 3)
ANIMALS = table("m chien chiens; m chat chats; m oiseau oiseaux; m cheval chevaux; f souris souris", 3)
THINGS = keyed("""
book m livre livres; letter f lettre lettres; newspaper m journal journaux;
apple f pomme pommes; bag m sac sacs; key f clé clés; chair f chaise chaises;
table f table tables; lamp f lampe lampes; window f fenêtre fenêtres; car f voiture voitures;
bicycle m vélo vélos; flower f fleur fleurs; cake m gâteau gâteaux; bread m pain pains;
song f chanson chansons; picture m tableau tableaux; story f histoire histoires;
bill f facture factures; map f carte cartes; clock f horloge horloges;
bottle f bouteille bouteilles; glass m verre verres; door f porte portes;
computer m ordinateur ordinateurs; film m film films; ball m ballon ballons;
hat m chapeau chapeaux; suitcase f valise valises; notebook m cahier cahiers;
jacket f veste vestes; umbrella m parapluie parapluies; present m cadeau cadeaux;
cup f tasse tasses; plate f assiette assiettes; parcel m colis colis; pen m stylo stylos;
phone m téléphone téléphones
""", 3)
# masculine, feminine, position, masculine form before a vowel
ADJECTIVES = keyed("""
big grand grande pre grand; small petit petite pre petit; old vieux vieille pre vieil;
new nouveau nouvelle pre nouvel; beautiful beau belle pre bel; red rouge rouge post -;
blue bleu bleue post -; green vert verte post -; loud bruyant bruyante post -;
quiet calme calme post -; tired fatigué fatiguée post -; fast rapide rapide post -;
slow lent lente post -; expensive cher chère post -; warm chaud chaude post -;
cold froid froide post -; friendly gentil gentille post -; hungry affamé affamée post -;
happy heureux heureuse post -; heavy lourd lourde post -; empty vide vide post -;
clean propre propre post -; dirty sale sale post -; strange étrange étrange post -;
funny drôle drôle post -; calm tranquille tranquille post -;
nice sympathique sympathique post -; important important importante post -;
broken cassé cassée post -; ready prêt prête post -; black noir noire post -;
white blanc blanche post -; pretty joli jolie pre joli; young jeune jeune pre jeune;
sad triste triste post -
""", 4)
INTRANSITIVE = keyed("""
sleep dort dormir; laugh rit rire; sing chante chanter; wait attend attendre;
work travaille travailler; play joue jouer; run court courir; swim nage nager;
dance danse danser; cry pleure pleurer; read lit lire; cook cuisine cuisiner;
eat mange manger; paint peint peindre; dream rêve rêver; study étudie étudier;
jump saute sauter
""", 2)
# 3rd singular, infinitive, participle, imperative (vous)
TRANSITIVE = keyed("""
read lit lire lu lisez; look_for cherche chercher cherché cherchez;
buy achète acheter acheté achetez; find trouve trouver trouvé trouvez;
see voit voir vu regardez; open ouvre ouvrir ouvert ouvrez;
bring apporte apporter apporté apportez; sell vend vendre vendu vendez;
forget oublie oublier oublié oubliez; repair répare réparer réparé réparez;
wash lave laver lavé lavez; carry porte porter porté portez; close ferme fermer fermé fermez;
take prend prendre pris prenez; hide cache cacher caché cachez;
order commande commander commandé commandez; lose perd perdre perdu perdez;
clean nettoie nettoyer nettoyé nettoyez; pack emballe emballer emballé emballez;
draw dessine dessiner dessiné dessinez; eat mange manger mangé mangez
""", 4)
PLACES = words("""
dans le jardin; dans la cuisine; dans le parc; à la gare; à l'école; au marché;
dans la forêt; en ville; au bureau; à la bibliothèque; au cinéma; à l'aéroport;
au restaurant; devant l'église; au village; à la plage; à l'hôpital; à la boulangerie;
dans la cour; au musée; derrière la maison; à côté de l'école; sur le balcon; dans le salon
""")
SURFACES = words("sur la table; sur l'étagère; dans la boîte; par terre; dans le placard")
DESTINATIONS = words("""
à la gare; à l'école; au marché; en ville; au bureau; à la bibliothèque; au cinéma;
à l'aéroport; au restaurant; à la plage; à la maison; chez le médecin; au parc; au travail;
chez mes grands-parents
""")
TIMES = words("""
aujourd'hui; demain; maintenant; le soir; le matin; chaque jour; souvent; parfois; ce soir;
le week-end; en été; en hiver; après le dîner; l'après-midi; tous les jours
""")
PAST_TIMES = words("hier; la semaine dernière; ce matin; lundi; hier soir; tout à l'heure")
SI_MANNERS = words("vite; lentement; doucement; fort; souvent; tôt; tard; bien")
DEGREES = words("très; assez; vraiment; trop; toujours; un peu")
PERFECT_SUBJECTS = words("j'ai; tu as; il a; elle a; nous avons; vous avez; ils ont; elles ont")
MODALS = words("""
je veux; nous voulons; tu peux; il doit; elle va; on peut; vous devez; nous allons;
je vais; elles peuvent
""")
SAY = words("dit; pense; croit; sait; espère")

_H_MUET = ("homme", "histoire", "horloge", "hôpital", "heure", "hiver", "heureux", "heureuse")
_VOWELS = "aeiouyéèêàâîôûœ"


def _vowel(word: str) -> bool:
    return word[:1].lower() in _VOWELS or word.lower().startswith(_H_MUET)


def elide(text: str) -> str:
    """que/de/je/ne/le/la + vowel -> qu'/d'/j'/n'/l' (the words here have a mute h)."""
    def repl(m: re.Match) -> str:
        return m.group(1) + "'" + m.group(3) if _vowel(m.group(3)) else m.group(0)

    return re.sub(r"\b(qu|d|j|n|l)(e|a) (\w+)", repl, text)


def noun_phrase(rng, noun, adj_kind: str = "", adj_p: float = 0.3, det: str = "") -> str:
    gender, singular, _ = noun
    adj_words = ("", "")
    if chance(rng, adj_p):
        masc, fem, position, masc_vowel = pick(rng, adjectives_for(ADJECTIVES, adj_kind or "at"))
        form = fem if gender == "f" else (masc_vowel if _vowel(singular) and position == "pre"
                                          else masc)
        adj_words = (form, "") if position == "pre" else ("", form)
    head = join(adj_words[0], singular, adj_words[1])
    det = det or pick(rng, ("def", "def", "def", "un", "poss", "ce"))
    if det == "def":
        article = "l'" if _vowel(head) else ("la" if gender == "f" else "le")
    elif det == "un":
        article = "une" if gender == "f" else "un"
    elif det == "ce":
        article = "cette" if gender == "f" else ("cet" if _vowel(head) else "ce")
    else:
        article = pick(rng, ("mon", "ton", "son", "notre", "votre", "leur"))
        if gender == "f" and not _vowel(head) and article.endswith("on"):
            article = article[0] + "a"
    return article + head if article.endswith("'") else join(article, head)


def _predicate(rng, gender: str, kind: str) -> str:
    masc, fem, _, _ = pick(rng, adjectives_for(ADJECTIVES, kind))
    adj = fem if gender == "f" else masc
    if chance(rng, 0.15):
        return join("n'est pas", adj)
    return join("est", pick(rng, DEGREES) if chance(rng, 0.6) else "", adj)


def _subject(rng, humans_only: bool = False) -> tuple[str, str]:
    noun = pick(rng, HUMANS if humans_only or chance(rng, 0.75) else ANIMALS)
    return noun_phrase(rng, noun, adj_kind="a"), noun[0]


def _intransitive(rng) -> tuple[str, str]:
    key = pick(rng, list(INTRANSITIVE))
    return _subject(rng, humans_only=key not in ANIMAL_VERBS)[0], INTRANSITIVE[key][0]


def _object(rng):
    verb, thing = verb_and_object(rng, TRANSITIVE, THINGS)
    return verb, noun_phrase(rng, thing, adj_kind="t")


def _simple_clause(rng) -> str:
    if chance(rng, 0.5):
        subject, verb = _intransitive(rng)
        return join(subject, verb, pick(rng, PLACES) if chance(rng, 0.5) else pick(rng, TIMES))
    (verb, *_), obj = _object(rng)
    return join(_subject(rng, True)[0], verb, obj)


def sentence(rng) -> str:
    """One French sentence from a randomly chosen frame."""
    return elide(_sentence(rng))


def _sentence(rng) -> str:
    frame = int(rng.integers(14))
    if frame == 0:
        subject, verb = _intransitive(rng)
        return finish(join(subject, verb, pick(rng, PLACES),
                           pick(rng, TIMES) if chance(rng, 0.5) else ""))
    if frame == 1:
        (verb, *_), obj = _object(rng)
        return finish(join(_subject(rng, True)[0], verb, obj,
                           pick(rng, PLACES) if chance(rng, 0.5) else ""))
    if frame == 2:
        (verb, *_), obj = _object(rng)
        return finish(f"{pick(rng, TIMES)}, " + join(_subject(rng, True)[0], verb, obj))
    if frame == 3:
        if chance(rng, 0.5):
            noun = pick(rng, list(THINGS.values()))
            subject, gender, kind = noun_phrase(rng, noun, adj_p=0), noun[0], "t"
        else:
            (subject, gender), kind = _subject(rng), "a"
        return finish(join(subject, _predicate(rng, gender, kind)), pick(rng, (".", " !", ".")))
    if frame == 4:
        (_, _, participle, _), obj = _object(rng)
        return finish(join(pick(rng, PERFECT_SUBJECTS), participle, obj,
                           pick(rng, PAST_TIMES) if chance(rng, 0.6) else ""))
    if frame == 5:
        (_, infinitive, _, _), obj = _object(rng)
        return finish(join(pick(rng, MODALS), infinitive, obj,
                           pick(rng, TIMES) if chance(rng, 0.5) else ""))
    if frame == 6:
        return finish(join(pick(rng, MODALS), "aller", pick(rng, DESTINATIONS),
                           pick(rng, TIMES) if chance(rng, 0.5) else ""))
    if frame == 7:  # yes/no questions
        (verb, _, participle, _), obj = _object(rng)
        if chance(rng, 0.5):
            return finish(join("est-ce que", _subject(rng, True)[0], verb, obj), " ?")
        return finish(join(pick(rng, ("as-tu", "avez-vous", "a-t-il", "a-t-elle")), participle,
                           obj), " ?")
    if frame == 8:  # wh-questions
        choice = int(rng.integers(5))
        (verb, _, participle, _), obj = _object(rng)
        if choice == 0:
            noun = pick(rng, list(THINGS.values()))
            thing = noun_phrase(rng, noun, adj_kind="t")
            return finish(join("où est", thing if chance(rng, 0.7) else _subject(rng)[0]), " ?")
        if choice == 1:
            subject, verb_i = _intransitive(rng)
            return finish(join("pourquoi est-ce que", subject, verb_i, "si",
                               pick(rng, SI_MANNERS)), " ?")
        if choice == 2:
            return finish(join("qui a", participle, obj), " ?")
        if choice == 3:
            return finish(join("qu'est-ce que", _subject(rng, True)[0], verb, pick(rng, TIMES)),
                          " ?")
        return finish(join("quand est-ce que", _subject(rng)[0], "va", pick(rng, DESTINATIONS)),
                      " ?")
    if frame == 9:  # counts and prices
        n, choice = count(rng), int(rng.integers(4))
        thing = pick(rng, list(THINGS.values()))
        if choice == 0:
            return finish(join("il y a", number_words(n), thing[2], pick(rng, SURFACES)))
        if choice == 1:
            return finish(join("nous avons encore besoin de", number_words(n), thing[2]))
        if choice == 2:
            return finish(join(noun_phrase(rng, thing, adj_p=0), "coûte", number_words(n),
                               "euros"))
        return finish(join("le train part à", number_words(int(rng.integers(2, 13))), "heures"))
    if frame == 10:
        (verb, *_), obj = _object(rng)
        who = pick(rng, ("je pense", "je crois", "nous espérons")) if chance(rng, 0.5) else \
            join(_subject(rng, True)[0], pick(rng, SAY))
        return finish(join(who, "que", _subject(rng, True)[0], verb, obj))
    if frame == 11:
        return finish(f"{_simple_clause(rng)}, {pick(rng, ('mais', 'et', 'car'))} "
                      f"{_simple_clause(rng)}")
    if frame == 12:
        (_, _, _, imperative), obj = _object(rng)
        if chance(rng, 0.5):
            return finish(join(imperative, obj) + ", s'il vous plaît", pick(rng, (".", " !")))
        return finish("s'il vous plaît, " + join(imperative, obj), " !")
    speaker = join(_subject(rng, True)[0], pick(rng, ("dit", "crie", "répond")))
    return capitalize(speaker) + " : « " + finish(_simple_clause(rng)) + " »"


_UNITS = ("zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze "
          "quinze seize").split()
_TENS = "_ _ vingt trente quarante cinquante soixante".split()


def number_words(n: int) -> str:
    """0-99 with the traditional spelling: "soixante et onze", "quatre-vingt-dix-sept"."""
    if n <= 16:
        return _UNITS[n]
    if n < 20:
        return "dix-" + _UNITS[n - 10]
    if n >= 80:
        return "quatre-vingts" if n == 80 else "quatre-vingt-" + number_words(n - 80)
    if n >= 70:
        return "soixante et onze" if n == 71 else "soixante-" + number_words(n - 60)
    tens, units = divmod(n, 10)
    if units == 0:
        return _TENS[tens]
    return _TENS[tens] + (" et un" if units == 1 else "-" + _UNITS[units])
