"""French sentences: gender agreement, elision (l', qu', d'), bel/nouvel/vieil before a
vowel, adjectives before or after the noun, "est-ce que" questions, French spacing before
? ! : and « », numbers up to quatre-vingt-dix-neuf."""

from __future__ import annotations

import re

import numpy as np

from .base import Grammar, adjectives_for, chance, finish, join, keyed, pick, table, words

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


class French(Grammar):
    def sentence(self, rng: np.random.Generator) -> str:
        return elide(super().sentence(rng))

    def describe(self, rng: np.random.Generator) -> str:
        subject, noun, kind = self.described(rng)
        return finish(join(subject, _predicate(rng, noun[0], kind)), pick(rng, (".", " !", ".")))

    def request(self, rng: np.random.Generator) -> str:
        (*_, imperative), obj = self.transitive(rng)
        if chance(rng, 0.5):
            return finish(join(imperative, obj) + ", s'il vous plaît", pick(rng, (".", " !")))
        return finish("s'il vous plaît, " + join(imperative, obj), " !")


GRAMMAR = French(
    humans=HUMANS, animals=ANIMALS, things=THINGS, intransitive_verbs=INTRANSITIVE,
    transitive_verbs=TRANSITIVE, places=PLACES, surfaces=SURFACES, destinations=DESTINATIONS,
    times=TIMES, past_times=PAST_TIMES, say=SAY, manners=SI_MANNERS, modals=MODALS,
    noun_phrase=noun_phrase, number_words=number_words, perfect=PERFECT_SUBJECTS, go="aller",
    question_marks=("", " ?"), yes_no_prefix="est-ce que",
    perfect_questions=("as-tu", "avez-vous", "a-t-il", "a-t-elle"),
    wh_phrases=("où est {thing}", "pourquoi est-ce que {subject} {verb} si {manner}",
                "qui a {participle} {obj}", "qu'est-ce que {subject} {verb} {time}",
                "quand est-ce que {subject} va {destination}"),
    count_phrases=("il y a {n} {things} {surface}", "nous avons encore besoin de {n} {things}",
                   "{thing} coûte {n} euros", "le train part à {hour} heures"),
    opinions=("je pense", "je crois", "nous espérons"),
    reported_phrase="{who} que {subject} {verb} {obj}", conjunctions=("mais", "et", "car"),
    speech_verbs=("dit", "crie", "répond"), quote_marks=(" : « ", " »"),
)


def sentence(rng: np.random.Generator) -> str:
    """One French sentence from a randomly chosen frame."""
    return GRAMMAR.sentence(rng)
