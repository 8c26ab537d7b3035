"""Mandarin romanisation: normalised zh-CN text -> toned pinyin syllables.

The romanised units of zh-CN in the language table (asr/languages.py): the `pinyin` tokenizer
kind is one unit per syllable, and the syllable error rate ("ser" in results) is computed
over `to_pinyin` strings, so acoustic transfer can be measured apart from character coverage.
"""

from __future__ import annotations

import re

# A converted syllable as pypinyin's TONE3 style writes it ("zhong1", "lv4", "ma5").
_SYLLABLE = re.compile(r"[a-zü]+[1-5]")


def _split_non_han(chunk: str) -> list[str]:
    # pypinyin hands over runs it cannot convert (Latin, digits); one unit per character keeps
    # the unit inventory small and matches what the char kind does with the same text.
    return [ch for ch in chunk if not ch.isspace()]


def pinyin_units(text: str) -> list[str]:
    """Toned pinyin syllables of normalised zh-CN `text` (TONE3, neutral tone 5); Latin
    letters and digits one per unit."""
    from pypinyin import Style, lazy_pinyin  # imported lazily: only zh-CN users pay for it

    units: list[str] = []
    for item in lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True,
                            errors=_split_non_han):
        if _SYLLABLE.fullmatch(item):
            units.append(item)
        else:
            # A Han character with no known reading comes back as itself plus the neutral
            # tone ("𠀋5"); keep the character, which training has almost surely not seen.
            if len(item) > 1 and item.endswith("5") and not item[:-1].isascii():
                item = item[:-1]
            units.extend(_split_non_han(item))
    return units


def to_pinyin(text: str) -> str:
    """Space-separated toned syllables of normalised zh-CN text, for syllable error rate."""
    return " ".join(pinyin_units(text))
