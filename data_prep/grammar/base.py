"""What the per-language grammars share: seeded choices, tables, punctuation, concept tags,
and `Grammar`, the sentence frames every European language fills from its own lexicon.

Every choice goes through a numpy Generator handed in by the caller, so a sentence depends
only on that generator's state: the corpus stays bit-identical for a given seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def pick(rng: np.random.Generator, items: Sequence):
    return items[int(rng.integers(len(items)))]


def chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def table(text: str, n_fields: int) -> list[tuple[str, ...]]:
    """Rows of `n_fields` fields: rows separated by ';' or newlines, fields by ':' or spaces.

    A field may hold spaces when ':' is the separator ("m:grand-père:grands-pères").
    """
    rows = []
    for raw in text.replace("\n", ";").split(";"):
        raw = raw.strip()
        if not raw:
            continue
        fields = raw.split(":") if ":" in raw else raw.split()
        if len(fields) != n_fields:
            raise ValueError(f"lexicon row {raw!r} has {len(fields)} fields, expected {n_fields}")
        rows.append(tuple(f.strip() for f in fields))
    return rows


def words(text: str) -> list[str]:
    """A ';'-separated list of words or fixed phrases."""
    return [w.strip() for w in text.replace("\n", ";").split(";") if w.strip()]


def join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def capitalize(text: str) -> str:
    """Upper-case the first letter, skipping opening punctuation such as ¿ ¡ « „ "."""
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1:]
    return text


def finish(text: str, end: str = ".") -> str:
    """Capitalise and close a sentence, as Common Voice's sentence collector would show it."""
    return capitalize(text.strip()) + end


def count(rng: np.random.Generator, lo: int = 2, hi: int = 99) -> int:
    """A count for "<number> <plural noun>", never ending in 1: 21, 31 ... need a gendered
    or singular form in French, Spanish and Italian ("vingt et une", "ventun")."""
    while True:
        n = int(rng.integers(lo, hi + 1))
        if n % 10 != 1:
            return n


# Which objects a verb takes and which adjectives suit what, keyed by concept so every
# language's lexicon shares them: "Sie liest die Zeitung", never "Sie liest die Tasse".
THING_TAGS = {
    "book": "read port buy", "letter": "read port open", "newspaper": "read port buy",
    "apple": "food port buy", "bag": "port open buy", "key": "port", "chair": "furn buy fix",
    "table": "furn buy fix clean", "lamp": "furn buy fix", "window": "open clean",
    "car": "veh buy fix clean", "bicycle": "veh buy fix clean", "flower": "port buy",
    "cake": "food buy", "bread": "food buy port", "song": "media", "picture": "media buy",
    "story": "read media", "bill": "read port", "map": "read port buy", "clock": "fix buy",
    "bottle": "open port dish", "glass": "dish clean", "door": "open clean",
    "computer": "fix buy port", "film": "media", "ball": "port buy", "hat": "wear port buy",
    "suitcase": "port open", "notebook": "read port buy", "jacket": "wear port buy clean",
    "umbrella": "port buy", "present": "port open buy", "cup": "dish clean port",
    "plate": "dish clean", "parcel": "port open", "pen": "port buy", "phone": "port fix buy",
}
VERB_OBJECTS = {
    "read": "read", "look_for": "port", "buy": "buy", "find": "port", "see": "media veh port",
    "need": "port buy", "open": "open", "bring": "port", "sell": "buy", "forget": "port",
    "repair": "fix", "wash": "clean dish", "carry": "port wear", "close": "open",
    "fetch": "port", "take": "port", "hide": "port", "order": "food buy", "lose": "port",
    "clean": "clean", "pack": "port", "draw": "veh furn", "wear": "wear", "eat": "food",
}
# a: fits people and animals, t: fits things
ADJECTIVE_TAGS = {
    "big": "at", "small": "at", "old": "at", "new": "t", "beautiful": "at", "red": "t",
    "blue": "t", "green": "t", "loud": "at", "quiet": "at", "tired": "a", "fast": "at",
    "slow": "at", "cheap": "t", "expensive": "t", "warm": "t", "cold": "t", "friendly": "a",
    "hungry": "a", "happy": "a", "heavy": "t", "empty": "t", "clean": "t", "dirty": "at",
    "strange": "at", "funny": "a", "calm": "a", "nice": "a", "important": "at", "broken": "t",
    "ready": "at", "black": "t", "white": "t", "pretty": "at", "young": "a", "sad": "a",
}
# intransitive verbs an animal can be the subject of
ANIMAL_VERBS = frozenset("sleep play run swim wait eat sit dream jump".split())


def keyed(text: str, n_fields: int) -> dict[str, tuple[str, ...]]:
    """`table()` rows whose first field is a concept key: {key: remaining fields}."""
    return {row[0]: row[1:] for row in table(text, n_fields + 1)}


def objects_for(verb: str, things: dict) -> list:
    """The lexicon entries of `things` that verb concept `verb` can take as its object."""
    wanted = set(VERB_OBJECTS[verb].split())
    return [forms for key, forms in things.items() if wanted & set(THING_TAGS[key].split())]


def adjectives_for(adjectives: dict, kind: str) -> list:
    """Adjective entries that suit people/animals ("a") or things ("t")."""
    return [forms for key, forms in adjectives.items() if kind in ADJECTIVE_TAGS[key]]


def verb_and_object(rng: np.random.Generator, verbs: dict, things: dict):
    """A transitive verb entry and an object entry it can take."""
    while True:
        key = pick(rng, list(verbs))
        objects = objects_for(key, things)
        if objects:
            return verbs[key], pick(rng, objects)


@dataclass(frozen=True)
class Grammar:
    """A language's lexicon and phrases, and the fourteen sentence frames drawn from them.

    Noun rows start with the gender (English: the singular) and end with the plural; verb
    rows start with the 3rd-person singular, then the infinitive (Romance and German: then
    the participle). The frames as written here are the Romance ones, which Spanish, Italian
    and French share word for word; a language subclasses to write `describe` and `request`
    and to override the frames its word order changes. Phrases are `str.format` templates.
    """

    humans: Sequence[tuple[str, ...]]
    animals: Sequence[tuple[str, ...]]
    things: dict[str, tuple[str, ...]]
    intransitive_verbs: dict[str, tuple[str, ...]]
    transitive_verbs: dict[str, tuple[str, ...]]
    places: Sequence[str]
    surfaces: Sequence[str]
    destinations: Sequence[str]
    times: Sequence[str]
    past_times: Sequence[str]
    say: Sequence[str]  # "<subject> says that ..."
    noun_phrase: Callable[..., str]  # (rng, noun row, adj_kind="a"|"t", adj_p=...) -> str
    number_words: Callable[[int], str]
    count_phrases: tuple[str, str, str, str]  # there are {n} {things} {surface}, need, price, train
    opinions: tuple[str, ...]  # "I think", said before "that ..."
    conjunctions: tuple[str, ...]
    speech_verbs: tuple[str, ...]  # "<subject> says: <quote>"
    quote_marks: tuple[str, str]
    question_marks: tuple[str, str] = ("", "?")
    reported_phrase: str = ""  # {who} that {subject} {verb} {obj}
    wh_phrases: tuple[str, ...] = ()  # where {thing}, why {subject} {verb} {manner}, who, ...
    manners: Sequence[str] = ()  # for "why does X run so fast"
    modals: Sequence[str] = ()  # before an infinitive: "we want to"
    go: str = ""  # the infinitive after a modal and before a destination
    perfect: Sequence[str] = ()  # auxiliary (with subject where not pro-drop) before a participle
    perfect_questions: tuple[str, ...] = ()  # "have you" + participle + object
    yes_no_prefix: str = ""  # before a statement turned yes/no question: "est-ce que"

    def sentence(self, rng: np.random.Generator) -> str:
        """One sentence from a frame drawn uniformly."""
        # order and number of frames are part of the corpus: changing them changes every seed
        frames = (self.action_somewhere, self.action_on_thing, self.time_first, self.describe,
                  self.perfect_tense, self.modal, self.going, self.yes_no, self.wh_question,
                  self.counts, self.reported, self.compound, self.request, self.quote)
        return frames[int(rng.integers(len(frames)))](rng)

    # -- building blocks ------------------------------------------------------------------
    def subject_noun(self, rng: np.random.Generator,
                     humans_only: bool = False) -> tuple[str, tuple[str, ...]]:
        """A person (or, a quarter of the time, an animal): (noun phrase, lexicon row)."""
        noun = pick(rng, self.humans if humans_only or chance(rng, 0.75) else self.animals)
        return self.noun_phrase(rng, noun, adj_kind="a"), noun

    def subject(self, rng: np.random.Generator, humans_only: bool = False) -> str:
        return self.subject_noun(rng, humans_only)[0]

    def intransitive(self, rng: np.random.Generator) -> tuple[str, tuple[str, ...]]:
        """(subject, verb row), an animal only with verbs an animal can do."""
        key = pick(rng, list(self.intransitive_verbs))
        return self.subject(rng, humans_only=key not in ANIMAL_VERBS), self.intransitive_verbs[key]

    def object_phrase(self, rng: np.random.Generator, thing: tuple[str, ...]) -> str:
        return self.noun_phrase(rng, thing, adj_kind="t")

    def transitive(self, rng: np.random.Generator) -> tuple[tuple[str, ...], str]:
        """(verb row, object noun phrase) that go together."""
        verb, thing = verb_and_object(rng, self.transitive_verbs, self.things)
        return verb, self.object_phrase(rng, thing)

    def described(self, rng: np.random.Generator) -> tuple[str, tuple[str, ...], str]:
        """Something to say what it is like: (noun phrase, row, "t" thing or "a" animate)."""
        if chance(rng, 0.5):
            noun = pick(rng, list(self.things.values()))
            return self.noun_phrase(rng, noun, adj_p=0), noun, "t"
        return *self.subject_noun(rng), "a"

    def simple_clause(self, rng: np.random.Generator) -> str:
        if chance(rng, 0.5):
            subject, (verb, _) = self.intransitive(rng)
            return join(subject, verb, pick(rng, self.places) if chance(rng, 0.5) else
                        pick(rng, self.times))
        (verb, *_), obj = self.transitive(rng)
        return join(self.subject(rng, True), verb, obj)

    def opinion(self, rng: np.random.Generator) -> str:
        """Who says or thinks what follows: "I think" or "the doctor says"."""
        if chance(rng, 0.5):
            return pick(rng, self.opinions)
        return join(self.subject(rng, True), pick(rng, self.say))

    def ask(self, text: str) -> str:
        return finish(self.question_marks[0] + text, self.question_marks[1])

    def price(self, rng: np.random.Generator, thing: tuple[str, ...], amount: str) -> str:
        return self.count_phrases[2].format(thing=self.noun_phrase(rng, thing, adj_p=0), n=amount)

    # -- frames ---------------------------------------------------------------------------
    def action_somewhere(self, rng: np.random.Generator, time_p: float = 0.5) -> str:
        """Someone does something somewhere, perhaps at some time."""
        subject, (verb, _) = self.intransitive(rng)
        return finish(join(subject, verb, pick(rng, self.places),
                           pick(rng, self.times) if chance(rng, time_p) else ""))

    def action_on_thing(self, rng: np.random.Generator) -> str:
        """Someone does something to a thing, perhaps somewhere."""
        (verb, *_), obj = self.transitive(rng)
        return finish(join(self.subject(rng, True), verb, obj,
                           pick(rng, self.places) if chance(rng, 0.5) else ""))

    def time_first(self, rng: np.random.Generator) -> str:
        """A time, then someone does something to a thing."""
        (verb, *_), obj = self.transitive(rng)
        return finish(f"{pick(rng, self.times)}, " + join(self.subject(rng, True), verb, obj))

    def describe(self, rng: np.random.Generator) -> str:
        """Something is (very) some way: each language's own agreement and copula."""
        raise NotImplementedError

    def perfect_tense(self, rng: np.random.Generator) -> str:
        """Someone has done something to a thing, perhaps at a past time."""
        (_, _, participle, *_), obj = self.transitive(rng)
        return finish(join(pick(rng, self.perfect), participle, obj,
                           pick(rng, self.past_times) if chance(rng, 0.6) else ""))

    def modal(self, rng: np.random.Generator) -> str:
        """Someone wants to (can, must ...) do something to a thing."""
        (_, infinitive, *_), obj = self.transitive(rng)
        return finish(join(pick(rng, self.modals), infinitive, obj,
                           pick(rng, self.times) if chance(rng, 0.5) else ""))

    def going(self, rng: np.random.Generator) -> str:
        """Someone wants to (can, must ...) go somewhere."""
        return finish(join(pick(rng, self.modals), self.go, pick(rng, self.destinations),
                           pick(rng, self.times) if chance(rng, 0.5) else ""))

    def yes_no(self, rng: np.random.Generator) -> str:
        """A yes/no question: a statement asked, or a perfect."""
        (verb, _, participle, *_), obj = self.transitive(rng)
        if chance(rng, 0.5):
            return self.ask(join(self.yes_no_prefix, self.subject(rng, True), verb, obj))
        return self.ask(join(pick(rng, self.perfect_questions), participle, obj))

    def wh_question(self, rng: np.random.Generator) -> str:
        """Where, why, who, what or when."""
        where, why, who, what, when = self.wh_phrases
        choice = int(rng.integers(5))
        (verb, _, participle, *_), obj = self.transitive(rng)
        if choice == 0:
            thing = self.noun_phrase(rng, pick(rng, list(self.things.values())), adj_kind="t")
            return self.ask(where.format(thing=thing if chance(rng, 0.7) else self.subject(rng)))
        if choice == 1:
            subject, (verb_i, _) = self.intransitive(rng)
            return self.ask(why.format(subject=subject, verb=verb_i,
                                       manner=pick(rng, self.manners)))
        if choice == 2:
            return self.ask(who.format(participle=participle, obj=obj))
        if choice == 3:
            return self.ask(what.format(verb=verb, subject=self.subject(rng, True),
                                        time=pick(rng, self.times)))
        return self.ask(when.format(subject=self.subject(rng),
                                    destination=pick(rng, self.destinations)))

    def counts(self, rng: np.random.Generator) -> str:
        """Counts and prices, numbers spelled out."""
        there, need, _, train = self.count_phrases
        n, choice = self.number_words(count(rng)), int(rng.integers(4))
        thing = pick(rng, list(self.things.values()))
        if choice == 0:
            return finish(there.format(n=n, things=thing[-1], surface=pick(rng, self.surfaces)))
        if choice == 1:
            return finish(need.format(n=n, things=thing[-1]))
        if choice == 2:
            return finish(self.price(rng, thing, n))
        return finish(train.format(hour=self.number_words(int(rng.integers(2, 13)))))

    def reported(self, rng: np.random.Generator) -> str:
        """Someone thinks or says that someone does something."""
        (verb, *_), obj = self.transitive(rng)
        return finish(self.reported_phrase.format(who=self.opinion(rng), verb=verb, obj=obj,
                                                  subject=self.subject(rng, True)))

    def compound(self, rng: np.random.Generator) -> str:
        """Two clauses joined by a conjunction."""
        return finish(f"{self.simple_clause(rng)}, {pick(rng, self.conjunctions)} "
                      f"{self.simple_clause(rng)}")

    def request(self, rng: np.random.Generator) -> str:
        """A polite imperative: each language's own."""
        raise NotImplementedError

    def quote(self, rng: np.random.Generator) -> str:
        """Someone says a clause, in the language's quotation marks."""
        speaker = join(self.subject(rng, True), pick(rng, self.speech_verbs))
        opening, closing = self.quote_marks
        return capitalize(speaker) + opening + finish(self.simple_clause(rng)) + closing
