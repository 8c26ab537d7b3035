"""English sentences: a/an before vowel sounds, third-person -s, irregular pasts and
participles, do-support in questions, numbers spelled out with hyphens."""

from __future__ import annotations

import numpy as np

from .base import Grammar, adjectives_for, chance, finish, join, keyed, pick, table, words

# singular, plural
HUMANS = table("""
teacher teachers; doctor doctors; child children; woman women; man men;
neighbour neighbours; farmer farmers; student students; baker bakers; driver drivers;
singer singers; nurse nurses; cook cooks; grandmother grandmothers;
grandfather grandfathers; friend friends; sister sisters; brother brothers; girl girls;
boy boys; uncle uncles; aunt aunts; guest guests; manager managers
""", 2)
ANIMALS = table("dog dogs; cat cats; bird birds; horse horses; mouse mice", 2)
THINGS = keyed("""
book book books; letter letter letters; newspaper newspaper newspapers; apple apple apples;
bag bag bags; key key keys; chair chair chairs; table table tables; lamp lamp lamps;
window window windows; car car cars; bicycle bicycle bicycles; flower flower flowers;
cake cake cakes; bread loaf loaves; song song songs; picture picture pictures;
story story stories; bill bill bills; map map maps; clock clock clocks;
bottle bottle bottles; glass glass glasses; door door doors; computer computer computers;
film film films; ball ball balls; hat hat hats; suitcase suitcase suitcases;
notebook notebook notebooks; jacket jacket jackets; umbrella umbrella umbrellas;
present present presents; cup cup cups; plate plate plates; parcel parcel parcels;
pen pen pens; phone phone phones
""", 2)
ADJECTIVES = {k: v[0] for k, v in keyed("""
big big; small small; old old; new new; beautiful beautiful; red red; blue blue; green green;
loud loud; quiet quiet; tired tired; fast fast; slow slow; cheap cheap; warm warm; cold cold;
friendly friendly; hungry hungry; happy happy; heavy heavy; empty empty; clean clean;
dirty dirty; strange strange; funny funny; calm calm; nice nice; important important;
broken broken; ready ready; black black; white white; pretty pretty; young young; sad sad
""", 1).items()}
# 3rd singular, base
INTRANSITIVE = keyed("""
sleep sleeps sleep; laugh laughs laugh; sing sings sing; wait waits wait; work works work;
play plays play; run runs run; swim swims swim; dance dances dance; cry cries cry;
read reads read; cook cooks cook; sit sits sit; eat eats eat; paint paints paint;
dream dreams dream; study studies study; jump jumps jump
""", 2)
# 3rd singular, base, past, participle
TRANSITIVE = keyed("""
read reads read read read; look_for:looks for:look for:looked for:looked for;
buy buys buy bought bought; find finds find found found; see sees see saw seen;
need needs need needed needed; open opens open opened opened; bring brings bring brought brought;
sell sells sell sold sold; forget forgets forget forgot forgotten;
repair repairs repair repaired repaired; wash washes wash washed washed;
carry carries carry carried carried; close closes close closed closed;
fetch fetches fetch fetched fetched; take takes take took taken; hide hides hide hid hidden;
order orders order ordered ordered; lose loses lose lost lost; clean cleans clean cleaned cleaned;
pack packs pack packed packed; draw draws draw drew drawn; eat eats eat ate eaten
""", 4)
PLACES = words("""
in the garden; in the kitchen; in the park; at the station; at school; at the market;
in the forest; in town; at the office; in the library; at the cinema; at the airport;
in the restaurant; in front of the church; in the village; on the beach; in the hospital;
at the bakery; in the yard; at the museum; behind the house; next to the school;
on the balcony; in the living room
""")
SURFACES = words("on the table; on the shelf; in the box; on the floor; in the cupboard")
DESTINATIONS = words("""
to the station; to school; to the market; into the forest; into town; to the office;
to the library; to the cinema; to the airport; to the beach; home; to the doctor;
to the park; to work; to my grandparents
""")
TIMES = words("""
today; tomorrow; now; in the evening; in the morning; every day; on Sundays; tonight;
at the weekend; in summer; in winter; after dinner; in the afternoon; every week
""")
PAST_TIMES = words("yesterday; last week; this morning; on Monday; last night; an hour ago")
MANNERS = words("fast; slowly; quietly; loudly; often; again; alone; together; early; late")
DEGREES = words("very; quite; really; too; so; not; still")
PERFECT_SUBJECTS = words("I have; you have; he has; she has; we have; they have")
MODALS = words("""
I want to; we would like to; you can; he must; she should; they might; we will; I can;
she has to; you need to
""")
SAY = words("says; thinks; believes; knows; hopes")
FREQUENCY = ("often", "usually", "sometimes", "never", "always")


def _indefinite(next_word: str) -> str:
    vowel_sound = next_word[0] in "aeio" or next_word.startswith(("umb", "ugl", "hour"))
    return "an" if vowel_sound else "a"


def noun_phrase(rng, noun: tuple[str, ...], adj_kind: str = "", adj_p: float = 0.3) -> str:
    """Determiner (+ adjective) + the singular of lexicon row `noun`."""
    adj = pick(rng, adjectives_for(ADJECTIVES, adj_kind or "at")) if chance(rng, adj_p) else ""
    if adj in ("ready", "broken"):  # predicative only here
        adj = ""
    head = join(adj, noun[0])
    det = pick(rng, ("the", "the", "the", "a", "my", "your", "his", "her", "our", "their"))
    return join(_indefinite(head) if det == "a" else det, head)


_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
          "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0-99 in words, compound numbers hyphenated ("forty-seven")."""
    if n < 20:
        return _UNITS[n]
    tens, units = divmod(n, 10)
    return _TENS[tens] + (f"-{_UNITS[units]}" if units else "")


class English(Grammar):
    """Do-support in questions, past tense after a past time, bare base form after modals."""

    def action_somewhere(self, rng: np.random.Generator, time_p: float = 0.6) -> str:
        return super().action_somewhere(rng, time_p)

    def time_first(self, rng: np.random.Generator) -> str:  # here: the simple past
        (_, _, past, _), obj = self.transitive(rng)
        clause = join(self.subject(rng, True), past, obj)
        if chance(rng, 0.3):
            return finish(f"{pick(rng, PAST_TIMES)}, {clause}")
        return finish(join(clause, pick(rng, PAST_TIMES)))

    def describe(self, rng: np.random.Generator) -> str:
        subject, _, kind = self.described(rng)
        return finish(join(subject, "is", pick(rng, DEGREES) if chance(rng, 0.6) else "",
                           pick(rng, adjectives_for(ADJECTIVES, kind)),
                           pick(rng, TIMES) if chance(rng, 0.3) else ""), pick(rng, ".!."))

    def perfect_tense(self, rng: np.random.Generator) -> str:
        auxiliary = pick(rng, PERFECT_SUBJECTS)
        (*_, participle), obj = self.transitive(rng)
        return finish(join(auxiliary, pick(rng, ("just", "already", "")), participle, obj))

    def modal(self, rng: np.random.Generator) -> str:
        modal = pick(rng, MODALS)
        (_, base, _, _), obj = self.transitive(rng)
        return finish(join(modal, base, obj, pick(rng, TIMES) if chance(rng, 0.5) else ""))

    def yes_no(self, rng: np.random.Generator) -> str:
        (_, base, _, participle), obj = self.transitive(rng)
        if chance(rng, 0.5):
            return finish(join("does", self.subject(rng, True), base, obj), "?")
        return finish(join(pick(rng, ("have you", "has he", "has she", "have they")),
                           participle, obj), "?")

    def wh_question(self, rng: np.random.Generator) -> str:
        choice = int(rng.integers(5))
        (_, base, past, participle), obj = self.transitive(rng)
        if choice == 0:
            thing = noun_phrase(rng, pick(rng, list(THINGS.values())), adj_kind="t")
            return finish(join("where is", thing if chance(rng, 0.7) else self.subject(rng)), "?")
        if choice == 1:
            subject, (_, base_i) = self.intransitive(rng)
            return finish(join("why does", subject, base_i, "so", pick(rng, MANNERS)), "?")
        if choice == 2:
            return finish(join("who", pick(rng, (past, "has " + participle)), obj), "?")
        if choice == 3:
            return finish(join("what does", self.subject(rng, True), base, pick(rng, TIMES)), "?")
        return finish(join("when does", self.subject(rng), "go", pick(rng, DESTINATIONS)), "?")

    def price(self, rng: np.random.Generator, thing: tuple[str, ...], amount: str) -> str:
        return join(super().price(rng, thing, amount), pick(rng, ("pounds", "dollars", "euros")))

    def reported(self, rng: np.random.Generator) -> str:
        (verb, *_), obj = self.transitive(rng)
        who = self.opinion(rng)
        return finish(join(who, "that" if chance(rng, 0.5) else "", self.subject(rng, True), verb,
                           obj))

    def request(self, rng: np.random.Generator) -> str:
        (_, base, _, _), obj = self.transitive(rng)
        if chance(rng, 0.5):
            return finish(join("please", base, obj), pick(rng, "!."))
        return finish(join(base, obj) + ", please", pick(rng, "!."))


GRAMMAR = English(
    humans=HUMANS, animals=ANIMALS, things=THINGS, intransitive_verbs=INTRANSITIVE,
    transitive_verbs=TRANSITIVE, places=PLACES, surfaces=SURFACES, destinations=DESTINATIONS,
    times=TIMES, past_times=PAST_TIMES, say=SAY, modals=MODALS, go="go",
    noun_phrase=noun_phrase, number_words=number_words,
    count_phrases=("there are {n} {things} {surface}", "we still need {n} {things}",
                   "{thing} costs {n}", "the train leaves at {hour} o'clock"),
    opinions=("I think", "I believe", "we hope"), conjunctions=("but", "and", "so"),
    speech_verbs=("says", "shouts", "whispers"), quote_marks=(', "', '"'),
)


def sentence(rng: np.random.Generator) -> str:
    """One English sentence from a randomly chosen frame."""
    return GRAMMAR.sentence(rng)
