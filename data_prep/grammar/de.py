"""German sentences: case and gender agreement for articles and adjectives, verb-second
word order in main clauses, verb-final in "dass" clauses, numbers spelled out."""

from __future__ import annotations

import numpy as np

from .base import Grammar, adjectives_for, chance, finish, join, keyed, pick, table, words

# gender, singular, plural. No weak masculines (Student, Nachbar): they change in every case.
HUMANS = table("""
m Lehrer Lehrer; f Lehrerin Lehrerinnen; n Kind Kinder; m Mann Männer; f Frau Frauen;
f Nachbarin Nachbarinnen; m Arzt Ärzte; f Ärztin Ärztinnen; n Mädchen Mädchen;
f Studentin Studentinnen; m Koch Köche; f Köchin Köchinnen; f Großmutter Großmütter;
m Großvater Großväter; m Freund Freunde; f Freundin Freundinnen; m Bäcker Bäcker;
f Schwester Schwestern; m Bruder Brüder; m Fahrer Fahrer; f Sängerin Sängerinnen;
m Onkel Onkel; f Tante Tanten; f Chefin Chefinnen; m Gast Gäste; f Verkäuferin Verkäuferinnen
""", 3)
ANIMALS = table("m Hund Hunde; f Katze Katzen; m Vogel Vögel; n Pferd Pferde; f Maus Mäuse", 3)
THINGS = keyed("""
book n Buch Bücher; letter m Brief Briefe; newspaper f Zeitung Zeitungen;
apple m Apfel Äpfel; bag f Tasche Taschen; key m Schlüssel Schlüssel; chair m Stuhl Stühle;
table m Tisch Tische; lamp f Lampe Lampen; window n Fenster Fenster; car n Auto Autos;
bicycle n Fahrrad Fahrräder; flower f Blume Blumen; cake m Kuchen Kuchen; bread n Brot Brote;
song n Lied Lieder; picture n Bild Bilder; story f Geschichte Geschichten;
bill f Rechnung Rechnungen; map f Karte Karten; clock f Uhr Uhren; bottle f Flasche Flaschen;
glass n Glas Gläser; door f Tür Türen; computer m Computer Computer; film m Film Filme;
ball m Ball Bälle; hat m Hut Hüte; suitcase m Koffer Koffer; notebook n Heft Hefte;
jacket f Jacke Jacken; umbrella m Schirm Schirme; present n Geschenk Geschenke;
cup f Tasse Tassen; plate m Teller Teller; parcel n Paket Pakete; pen m Stift Stifte;
phone n Handy Handys
""", 3)
# only adjectives whose endings attach plainly ("dunkel", "teuer" lose an e when declined)
ADJECTIVES = {k: v[0] for k, v in keyed("""
big groß; small klein; old alt; new neu; beautiful schön; red rot; blue blau; green grün;
loud laut; quiet leise; tired müde; fast schnell; slow langsam; cheap billig; warm warm;
cold kalt; friendly freundlich; hungry hungrig; happy glücklich; heavy schwer; empty leer;
clean sauber; dirty schmutzig; strange fremd; funny lustig; calm ruhig; nice nett;
important wichtig; broken kaputt; ready fertig; black schwarz; white weiß; pretty hübsch;
young jung; sad traurig
""", 1).items()}
INTRANSITIVE = keyed("""
sleep schläft schlafen; laugh lacht lachen; sing singt singen; wait wartet warten;
work arbeitet arbeiten; play spielt spielen; run läuft laufen; swim schwimmt schwimmen;
dance tanzt tanzen; cry weint weinen; read liest lesen; cook kocht kochen; sit sitzt sitzen;
eat isst essen; paint malt malen; dream träumt träumen; study lernt lernen; jump springt springen
""", 2)
# 3rd singular, infinitive, participle (perfect with haben)
TRANSITIVE = keyed("""
read liest lesen gelesen; look_for sucht suchen gesucht; buy kauft kaufen gekauft;
find findet finden gefunden; see sieht sehen gesehen; need braucht brauchen gebraucht;
open öffnet öffnen geöffnet; bring bringt bringen gebracht; sell verkauft verkaufen verkauft;
forget vergisst vergessen vergessen; repair repariert reparieren repariert;
wash wäscht waschen gewaschen; carry trägt tragen getragen; close schließt schließen geschlossen;
fetch holt holen geholt; take nimmt nehmen genommen; hide versteckt verstecken versteckt;
order bestellt bestellen bestellt; lose verliert verlieren verloren; clean putzt putzen geputzt;
pack packt packen gepackt; draw zeichnet zeichnen gezeichnet; eat isst essen gegessen
""", 3)
PLACES = words("""
im Garten; in der Küche; im Park; am Bahnhof; in der Schule; auf dem Markt; im Wald;
in der Stadt; im Büro; in der Bibliothek; im Kino; am Flughafen; im Restaurant;
vor der Kirche; im Dorf; am Strand; im Krankenhaus; in der Bäckerei; auf dem Hof;
im Museum; hinter dem Haus; neben der Schule; auf dem Balkon; im Wohnzimmer
""")
SURFACES = words("auf dem Tisch; im Regal; in der Kiste; auf dem Boden; im Schrank; neben der Tür")
DESTINATIONS = words("""
zum Bahnhof; zur Schule; zum Markt; in den Wald; in die Stadt; ins Büro; in die Bibliothek;
ins Kino; zum Flughafen; ins Restaurant; zum Strand; nach Hause; zum Arzt; in den Park;
zur Arbeit; zu den Großeltern
""")
TIMES = words("""
heute; morgen; jetzt; am Abend; am Morgen; jeden Tag; oft; manchmal; immer; heute Abend;
morgen früh; am Wochenende; im Sommer; im Winter; nach dem Essen; am Nachmittag
""")
PAST_TIMES = words("gestern; letzte Woche; heute Morgen; vorhin; am Montag; gestern Abend")
MANNERS = words("schnell; langsam; leise; laut; gern; wieder; allein; zusammen; früh; spät")
DEGREES = words("sehr; ziemlich; wirklich; zu; so; nicht; gar nicht; immer noch")
PERFECT_SUBJECTS = words("ich habe; du hast; er hat; sie hat; wir haben; ihr habt")
MODALS = words("""
ich möchte; wir wollen; du kannst; er muss; sie soll; ihr dürft; man kann; wir müssen;
ich will; sie kann
""")
SAY = words("sagt; meint; glaubt; weiß; hofft")

_DEF = {"nom": dict(m="der", f="die", n="das", p="die"),
        "acc": dict(m="den", f="die", n="das", p="die"),
        "dat": dict(m="dem", f="der", n="dem", p="den")}
_EIN_ENDING = {"nom": dict(m="", f="e", n=""), "acc": dict(m="en", f="e", n=""),
               "dat": dict(m="em", f="er", n="em")}
_WEAK = {"nom": dict(m="e", f="e", n="e", p="en"), "acc": dict(m="en", f="e", n="e", p="en"),
         "dat": dict(m="en", f="en", n="en", p="en")}
_STRONG_AFTER_BARE_EIN = dict(m="er", n="es")  # "ein großer Hund", "mein altes Haus"
_EIN_WORDS = ("ein", "mein", "dein", "sein", "ihr", "unser", "kein")

_UNITS = ("null eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn "
          "vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn").split()
_TENS = "_ _ zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig".split()


def number_words(n: int) -> str:
    """0-99 as German writes them: one word, units first ("siebenundvierzig")."""
    if n < 20:
        return _UNITS[n]
    tens, units = divmod(n, 10)
    if units == 0:
        return _TENS[tens]
    return ("ein" if units == 1 else _UNITS[units]) + "und" + _TENS[tens]


def noun_phrase(rng, noun, case: str = "nom", adj_kind: str = "", adj_p: float = 0.3) -> str:
    """Determiner (+ adjective) + noun in `case`; adj_kind "a" or "t" picks fitting adjectives."""
    gender, singular, _ = noun
    adj = pick(rng, adjectives_for(ADJECTIVES, adj_kind or "at")) if chance(rng, adj_p) else ""
    if adj in ("kaputt", "fertig"):  # predicative only
        adj = ""
    if chance(rng, 0.3):
        det = pick(rng, _EIN_WORDS) + _EIN_ENDING[case][gender]
        ending = _WEAK[case][gender] if _EIN_ENDING[case][gender] else \
            _STRONG_AFTER_BARE_EIN[gender]
    else:
        det, ending = _DEF[case][gender], _WEAK[case][gender]
    if adj:  # "müde" + "en" -> "müden", not "müdeen"
        adj += ending[1:] if adj.endswith("e") else ending
    return join(det, adj, singular)


class German(Grammar):
    """Verb second in main clauses, verb last after a modal, a perfect or "dass"."""

    def object_phrase(self, rng: np.random.Generator, thing: tuple[str, ...]) -> str:
        return noun_phrase(rng, thing, "acc", adj_kind="t")

    def action_somewhere(self, rng: np.random.Generator, time_p: float = 0.6) -> str:
        subject, (verb, _) = self.intransitive(rng)
        return finish(join(subject, verb, pick(rng, TIMES) if chance(rng, time_p) else "",
                           pick(rng, PLACES)))

    def time_first(self, rng: np.random.Generator) -> str:
        (verb, *_), obj = self.transitive(rng)
        return finish(join(pick(rng, TIMES), verb, self.subject(rng, True), obj))

    def describe(self, rng: np.random.Generator) -> str:
        subject, _, kind = self.described(rng)
        return finish(join(subject, "ist", pick(rng, TIMES) if chance(rng, 0.3) else "",
                           pick(rng, DEGREES) if chance(rng, 0.6) else "",
                           pick(rng, adjectives_for(ADJECTIVES, kind))), pick(rng, ".!."))

    def perfect_tense(self, rng: np.random.Generator) -> str:
        auxiliary = pick(rng, PERFECT_SUBJECTS)
        (_, _, participle), obj = self.transitive(rng)
        return finish(join(auxiliary, pick(rng, PAST_TIMES), obj, participle))

    def modal(self, rng: np.random.Generator) -> str:
        modal = pick(rng, MODALS)
        (_, infinitive, _), obj = self.transitive(rng)
        return finish(join(modal, pick(rng, TIMES) if chance(rng, 0.5) else "", obj, infinitive))

    def going(self, rng: np.random.Generator) -> str:
        return finish(join(pick(rng, MODALS), pick(rng, TIMES) if chance(rng, 0.5) else "",
                           pick(rng, DESTINATIONS), "gehen"))

    def yes_no(self, rng: np.random.Generator) -> str:
        (verb, _, participle), obj = self.transitive(rng)
        if chance(rng, 0.5):
            return finish(join(verb, self.subject(rng, True), obj), "?")
        return finish(join(pick(rng, ("hast du", "habt ihr", "hat er", "hat sie")), obj,
                           participle), "?")

    def request(self, rng: np.random.Generator) -> str:
        (_, infinitive, _), obj = self.transitive(rng)
        return finish(join("bitte", infinitive, "Sie", obj), pick(rng, "!."))


GRAMMAR = German(
    humans=HUMANS, animals=ANIMALS, things=THINGS, intransitive_verbs=INTRANSITIVE,
    transitive_verbs=TRANSITIVE, places=PLACES, surfaces=SURFACES, destinations=DESTINATIONS,
    times=TIMES, past_times=PAST_TIMES, say=SAY, manners=MANNERS,
    noun_phrase=noun_phrase, number_words=number_words,
    wh_phrases=("wo ist {thing}", "warum {verb} {subject} so {manner}",
                "wer hat {obj} {participle}", "was {verb} {subject} {time}",
                "wann kommt {subject} {destination}"),
    count_phrases=("{surface} liegen {n} {things}", "wir brauchen noch {n} {things}",
                   "{thing} kostet {n} Euro", "der Zug fährt um {hour} Uhr ab"),
    opinions=("ich glaube", "ich denke", "wir hoffen"),
    reported_phrase="{who}, dass {subject} {obj} {verb}", conjunctions=("aber", "und", "denn"),
    speech_verbs=("sagt", "ruft", "meint"), quote_marks=(": „", "“"),
)


def sentence(rng: np.random.Generator) -> str:
    """One German sentence from a randomly chosen frame."""
    return GRAMMAR.sentence(rng)
