"""Small helpers shared by the per-language grammars: seeded choices, tables, punctuation.

Every choice goes through a numpy Generator handed in by the caller, so a sentence depends
only on that generator's state: the corpus stays bit-identical for a given seed.
"""

from __future__ import annotations

from collections.abc import Sequence

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
