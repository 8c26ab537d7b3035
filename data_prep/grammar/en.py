"""English sentences: a/an before vowel sounds, third-person -s, irregular pasts and
participles, do-support in questions, numbers spelled out with hyphens."""

from __future__ import annotations

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
PERFECT_SUBJECTS = table("I have; you have; he has; she has; we have; they have", 2)
MODALS = table("""
I:want to; we:would like to; you:can; he:must; she:should; they:might; we:will; I:can;
she:has to; you:need to
""", 2)
SAY = words("says; thinks; believes; knows; hopes")
FREQUENCY = ("often", "usually", "sometimes", "never", "always")


def _indefinite(next_word: str) -> str:
    vowel_sound = next_word[0] in "aeio" or next_word.startswith(("umb", "ugl", "hour"))
    return "an" if vowel_sound else "a"


def noun_phrase(rng, noun: str, adj_kind: str = "", adj_p: float = 0.3) -> str:
    adj = pick(rng, adjectives_for(ADJECTIVES, adj_kind or "at")) if chance(rng, adj_p) else ""
    if adj in ("ready", "broken"):  # predicative only here
        adj = ""
    head = join(adj, noun)
    det = pick(rng, ("the", "the", "the", "a", "my", "your", "his", "her", "our", "their"))
    return join(_indefinite(head) if det == "a" else det, head)


def _subject(rng, humans_only: bool = False) -> str:
    nouns = HUMANS if humans_only or chance(rng, 0.75) else ANIMALS
    return noun_phrase(rng, pick(rng, nouns)[0], adj_kind="a")


def _intransitive(rng) -> tuple[str, tuple[str, str]]:
    key = pick(rng, list(INTRANSITIVE))
    return _subject(rng, humans_only=key not in ANIMAL_VERBS), INTRANSITIVE[key]


def _object(rng):
    verb, thing = verb_and_object(rng, TRANSITIVE, THINGS)
    return verb, noun_phrase(rng, thing[0], adj_kind="t")


def _simple_clause(rng) -> str:
    if chance(rng, 0.5):
        subject, (verb, _) = _intransitive(rng)
        return join(subject, verb, pick(rng, PLACES) if chance(rng, 0.5) else pick(rng, TIMES))
    (verb, *_), obj = _object(rng)
    return join(_subject(rng, True), verb, obj)


def sentence(rng) -> str:
    """One English sentence from a randomly chosen frame."""
    frame = int(rng.integers(14))
    if frame == 0:
        subject, (verb, _) = _intransitive(rng)
        return finish(join(subject, verb, pick(rng, PLACES),
                           pick(rng, TIMES) if chance(rng, 0.6) else ""))
    if frame == 1:
        (verb, *_), obj = _object(rng)
        return finish(join(_subject(rng, True), verb, obj,
                           pick(rng, PLACES) if chance(rng, 0.5) else ""))
    if frame == 2:
        (_, _, past, _), obj = _object(rng)
        clause = join(_subject(rng, True), past, obj)
        if chance(rng, 0.3):
            return finish(f"{pick(rng, PAST_TIMES)}, {clause}")
        return finish(join(clause, pick(rng, PAST_TIMES)))
    if frame == 3:
        if chance(rng, 0.5):
            thing = pick(rng, list(THINGS.values()))[0]
            subject, kind = noun_phrase(rng, thing, adj_p=0), "t"
        else:
            subject, kind = _subject(rng), "a"
        return finish(join(subject, "is", pick(rng, DEGREES) if chance(rng, 0.6) else "",
                           pick(rng, adjectives_for(ADJECTIVES, kind)),
                           pick(rng, TIMES) if chance(rng, 0.3) else ""), pick(rng, ".!."))
    if frame == 4:
        pron, aux = pick(rng, PERFECT_SUBJECTS)
        (*_, participle), obj = _object(rng)
        return finish(join(pron, aux, pick(rng, ("just", "already", "")), participle, obj))
    if frame == 5:
        pron, modal = pick(rng, MODALS)
        (_, base, _, _), obj = _object(rng)
        return finish(join(pron, modal, base, obj, pick(rng, TIMES) if chance(rng, 0.5) else ""))
    if frame == 6:
        pron, modal = pick(rng, MODALS)
        return finish(join(pron, modal, "go", pick(rng, DESTINATIONS),
                           pick(rng, TIMES) if chance(rng, 0.5) else ""))
    if frame == 7:  # yes/no questions
        (_, base, _, participle), obj = _object(rng)
        if chance(rng, 0.5):
            return finish(join("does", _subject(rng, True), base, obj), "?")
        return finish(join(pick(rng, ("have you", "has he", "has she", "have they")),
                           participle, obj), "?")
    if frame == 8:  # wh-questions
        choice = int(rng.integers(5))
        (verb, base, past, participle), obj = _object(rng)
        if choice == 0:
            thing = noun_phrase(rng, pick(rng, list(THINGS.values()))[0], adj_kind="t")
            return finish(join("where is", thing if chance(rng, 0.7) else _subject(rng)), "?")
        if choice == 1:
            subject, (_, base_i) = _intransitive(rng)
            return finish(join("why does", subject, base_i, "so", pick(rng, MANNERS)), "?")
        if choice == 2:
            return finish(join("who", pick(rng, (past, "has " + participle)), obj), "?")
        if choice == 3:
            return finish(join("what does", _subject(rng, True), base, pick(rng, TIMES)), "?")
        return finish(join("when does", _subject(rng), "go", pick(rng, DESTINATIONS)), "?")
    if frame == 9:  # counts and prices
        n, choice = count(rng), int(rng.integers(4))
        thing = pick(rng, list(THINGS.values()))
        if choice == 0:
            return finish(join("there are", number_words(n), thing[1], pick(rng, SURFACES)))
        if choice == 1:
            return finish(join("we still need", number_words(n), thing[1]))
        if choice == 2:
            return finish(join(noun_phrase(rng, thing[0], adj_p=0), "costs", number_words(n),
                               pick(rng, ("pounds", "dollars", "euros"))))
        return finish(join("the train leaves at", number_words(int(rng.integers(2, 13))),
                           "o'clock"))
    if frame == 10:
        (verb, *_), obj = _object(rng)
        who = pick(rng, ("I think", "I believe", "we hope")) if chance(rng, 0.5) else \
            join(_subject(rng, True), pick(rng, SAY))
        return finish(join(who, "that" if chance(rng, 0.5) else "", _subject(rng, True), verb, obj))
    if frame == 11:
        return finish(f"{_simple_clause(rng)}, {pick(rng, ('but', 'and', 'so'))} "
                      f"{_simple_clause(rng)}")
    if frame == 12:
        (_, base, _, _), obj = _object(rng)
        return finish(join("please", base, obj), pick(rng, "!.")) if chance(rng, 0.5) else \
            finish(join(base, obj) + ", please", pick(rng, "!."))
    speaker = join(_subject(rng, True), pick(rng, ("says", "shouts", "whispers")))
    return capitalize(speaker) + ', "' + finish(_simple_clause(rng)) + '"'


_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
          "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """0-99 in words, compound numbers hyphenated ("forty-seven")."""
    if n < 20:
        return _UNITS[n]
    tens, units = divmod(n, 10)
    return _TENS[tens] + (f"-{_UNITS[units]}" if units else "")
