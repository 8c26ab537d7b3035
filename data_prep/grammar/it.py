"""Italian sentences: articles chosen by the following sound (il/lo/l', un/uno/un'),
gender agreement, possessives with their article, numbers up to novantanove
("ventotto", "trentatré")."""

from __future__ import annotations

import numpy as np

from .base import Grammar, adjectives_for, chance, finish, join, keyed, pick, table, words

HUMANS = table("""
m ragazzo ragazzi; f ragazza ragazze; m bambino bambini; f bambina bambine; m uomo uomini;
f donna donne; m vicino vicini; f vicina vicine; m medico medici; m fornaio fornai;
m autista autisti; f cantante cantanti; f infermiera infermiere; m cuoco cuochi;
f nonna nonne; m nonno nonni; m amico amici; f amica amiche; f sorella sorelle;
m fratello fratelli; m studente studenti; f studentessa studentesse; m professore professori;
f professoressa professoresse; m zio zii; f zia zie; m postino postini
""", 3)
ANIMALS = table("m cane cani; m gatto gatti; m uccello uccelli; m cavallo cavalli; m topo topi", 3)
THINGS = keyed("""
book m libro libri; letter f lettera lettere; newspaper m giornale giornali;
apple f mela mele; bag f borsa borse; key f chiave chiavi; chair f sedia sedie;
table m tavolo tavoli; lamp f lampada lampade; window f finestra finestre;
car f macchina macchine; bicycle f bicicletta biciclette; flower m fiore fiori;
cake f torta torte; bread m pane pani; song f canzone canzoni; picture m quadro quadri;
story f storia storie; bill m conto conti; map f mappa mappe; clock m orologio orologi;
bottle f bottiglia bottiglie; glass m bicchiere bicchieri; door f porta porte;
computer m computer computer; film m film film; ball m pallone palloni;
hat m cappello cappelli; suitcase f valigia valigie; notebook m quaderno quaderni;
jacket f giacca giacche; umbrella m ombrello ombrelli; present m regalo regali;
cup f tazza tazze; plate m piatto piatti; parcel m pacco pacchi; pen f penna penne;
phone m telefono telefoni
""", 3)
ADJECTIVES = keyed("""
big grande grande; small piccolo piccola; old vecchio vecchia; new nuovo nuova;
beautiful bello bella; red rosso rossa; blue blu blu; green verde verde;
loud rumoroso rumorosa; quiet silenzioso silenziosa; tired stanco stanca;
fast veloce veloce; slow lento lenta; cheap economico economica; expensive caro cara;
warm caldo calda; cold freddo fredda; friendly gentile gentile; hungry affamato affamata;
happy felice felice; heavy pesante pesante; empty vuoto vuota; clean pulito pulita;
dirty sporco sporca; strange strano strana; funny divertente divertente;
calm tranquillo tranquilla; nice simpatico simpatica; important importante importante;
broken rotto rotta; ready pronto pronta; black nero nera; white bianco bianca;
pretty carino carina; young giovane giovane; sad triste triste
""", 2)
INTRANSITIVE = keyed("""
sleep dorme dormire; laugh ride ridere; sing canta cantare; wait aspetta aspettare;
work lavora lavorare; play gioca giocare; run corre correre; swim nuota nuotare;
dance balla ballare; cry piange piangere; read legge leggere; cook cucina cucinare;
eat mangia mangiare; paint dipinge dipingere; dream sogna sognare; study studia studiare;
jump salta saltare
""", 2)
# 3rd singular, infinitive, participle, imperative (Lei)
TRANSITIVE = keyed("""
read legge leggere letto legga; look_for cerca cercare cercato cerchi;
buy compra comprare comprato compri; find trova trovare trovato trovi;
see vede vedere visto guardi; open apre aprire aperto apra;
bring porta portare portato porti; sell vende vendere venduto venda;
forget dimentica dimenticare dimenticato dimentichi; repair ripara riparare riparato ripari;
wash lava lavare lavato lavi; close chiude chiudere chiuso chiuda;
take prende prendere preso prenda; hide nasconde nascondere nascosto nasconda;
order ordina ordinare ordinato ordini; lose perde perdere perso perda;
clean pulisce pulire pulito pulisca; pack impacchetta impacchettare impacchettato impacchetti;
draw disegna disegnare disegnato disegni; eat mangia mangiare mangiato mangi
""", 4)
PLACES = words("""
in giardino; in cucina; al parco; alla stazione; a scuola; al mercato; nel bosco; in città;
in ufficio; in biblioteca; al cinema; all'aeroporto; al ristorante; davanti alla chiesa;
in paese; in spiaggia; in ospedale; al museo; in panetteria; in cortile; dietro la casa;
accanto alla scuola; sul balcone; in salotto
""")
SURFACES = words("sul tavolo; sullo scaffale; nella scatola; sul pavimento; nell'armadio")
DESTINATIONS = words("""
alla stazione; a scuola; al mercato; nel bosco; in città; in ufficio; in biblioteca;
al cinema; all'aeroporto; in spiaggia; a casa; dal medico; al parco; al lavoro; dai nonni
""")
TIMES = words("""
oggi; domani; adesso; la sera; la mattina; ogni giorno; spesso; a volte; stasera;
nel fine settimana; d'estate; d'inverno; dopo cena; il pomeriggio; tutti i giorni
""")
PAST_TIMES = words("ieri; la settimana scorsa; stamattina; lunedì; ieri sera; un'ora fa")
COSI_MANNERS = words("veloce; piano; forte; presto; tardi; bene; male")
DEGREES = words("molto; abbastanza; davvero; troppo; ancora; un po'")
PERFECT_AUX = words("ho; hai; ha; abbiamo; avete; hanno")
MODALS = words("voglio; vogliamo; puoi; deve; possiamo; devo; dovete; preferisco; vuole")
SAY = words("dice; sa; racconta; scrive; ripete")  # verbs that keep the indicative

_VOWELS = "aeiouàèéìòù"


def _lo_word(word: str) -> bool:
    """Words taking lo/uno/gli: s + consonant, z, gn, ps, pn, x, y."""
    w = word.lower()
    return (w[:1] == "s" and len(w) > 1 and w[1] not in _VOWELS) or \
        w.startswith(("z", "gn", "ps", "pn", "x", "y"))


def article(kind: str, gender: str, next_word: str) -> str:
    vowel = next_word[:1].lower() in _VOWELS
    if kind == "def":
        if vowel:
            return "l'"
        return "la" if gender == "f" else ("lo" if _lo_word(next_word) else "il")
    if gender == "f":
        return "un'" if vowel else "una"
    return "uno" if _lo_word(next_word) else "un"


def _attach(art: str, rest: str) -> str:
    return art + rest if art.endswith("'") else join(art, rest)


def noun_phrase(rng, noun, adj_kind: str = "", adj_p: float = 0.3, det: str = "") -> str:
    gender, singular, _ = noun
    adj = ""
    if chance(rng, adj_p):
        masc, fem = pick(rng, adjectives_for(ADJECTIVES, adj_kind or "at"))
        adj = fem if gender == "f" else masc
    head = join(singular, adj)
    det = det or pick(rng, ("def", "def", "def", "un", "poss", "questo"))
    if det == "questo":
        return join("questa" if gender == "f" else "questo", head)
    if det == "poss":
        poss = pick(rng, ("mio", "tuo", "suo", "nostro"))
        poss = poss[:-1] + "a" if gender == "f" else poss
        return join(article("def", gender, poss), poss, head)
    return _attach(article(det, gender, head), head)


def _predicate(rng, gender: str, kind: str) -> str:
    masc, fem = pick(rng, adjectives_for(ADJECTIVES, kind))
    neg = "non" if chance(rng, 0.15) else ""
    return join(neg, "è", pick(rng, DEGREES) if chance(rng, 0.5) and not neg else "",
                fem if gender == "f" else masc)


_UNITS = ("zero uno due tre quattro cinque sei sette otto nove dieci undici dodici tredici "
          "quattordici quindici sedici diciassette diciotto diciannove").split()
_TENS = "_ _ venti trenta quaranta cinquanta sessanta settanta ottanta novanta".split()


def number_words(n: int) -> str:
    """0-99 as one word; the tens lose their vowel before uno/otto, and tre takes an accent."""
    if n < 20:
        return _UNITS[n]
    tens, units = divmod(n, 10)
    word = _TENS[tens]
    if units in (1, 8):
        word = word[:-1]
    return word + ("" if units == 0 else "tré" if units == 3 else _UNITS[units])


class Italian(Grammar):
    def describe(self, rng: np.random.Generator) -> str:
        subject, noun, kind = self.described(rng)
        return finish(join(subject, _predicate(rng, noun[0], kind)), pick(rng, ".!."))

    def request(self, rng: np.random.Generator) -> str:
        (*_, imperative), obj = self.transitive(rng)
        if chance(rng, 0.5):
            return finish("per favore, " + join(imperative, obj), pick(rng, ".!"))
        return finish(join(imperative, obj) + ", per favore", pick(rng, ".!"))


GRAMMAR = Italian(
    humans=HUMANS, animals=ANIMALS, things=THINGS, intransitive_verbs=INTRANSITIVE,
    transitive_verbs=TRANSITIVE, places=PLACES, surfaces=SURFACES, destinations=DESTINATIONS,
    times=TIMES, past_times=PAST_TIMES, say=SAY, manners=COSI_MANNERS, modals=MODALS,
    noun_phrase=noun_phrase, number_words=number_words, perfect=PERFECT_AUX, go="andare",
    perfect_questions=("hai", "avete", "ha"),
    wh_phrases=("dov'è {thing}", "perché {subject} {verb} così {manner}",
                "chi ha {participle} {obj}", "che cosa {verb} {subject} {time}",
                "quando va {subject} {destination}"),
    count_phrases=("ci sono {n} {things} {surface}", "abbiamo ancora bisogno di {n} {things}",
                   "{thing} costa {n} euro", "il treno parte alle {hour}"),
    opinions=("so", "vedo", "ho sentito"), reported_phrase="{who} che {subject} {verb} {obj}",
    conjunctions=("ma", "e", "perché"), speech_verbs=("dice", "grida", "risponde"),
    quote_marks=(": «", "»"),
)


def sentence(rng: np.random.Generator) -> str:
    """One Italian sentence from a randomly chosen frame."""
    return GRAMMAR.sentence(rng)
