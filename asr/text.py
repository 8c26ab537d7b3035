"""Per-language text normalisation: one function feeds both training targets and scoring.

`normalize_text(text, locale)` is pure and idempotent (normalising twice equals once). Which
rules apply is the language table's call (asr/languages.py, `Language.normaliser`): spaced
languages get the alphabetic rules, languages written without spaces the unspaced ones. A
locale the table does not list gets the rules of its script; a malformed code raises
UnknownLocaleError. The rules:

Alphabetic (de, fr, es, it, en; every spaced language: nl, pt-BR, ru, el, ar, ...)
  * Unicode NFKC (full-width forms, ligatures, superscripts become plain characters).
  * Lower-cased with `str.lower()`, not `casefold()`: casefold turns German ß into "ss",
    which would make "Straße" and "Strasse" one word and teach the German head a spelling
    Common Voice transcripts do not use. Capital ẞ lowers to ß as well. Scripts without case
    (Arabic, Hebrew, Devanagari) pass through unchanged.
  * Punctuation (Unicode P*) and symbols (S*) become word breaks. That includes hyphens and
    dashes, so "peut-être" → "peut être" and "E-Mail" → "e mail": CTC sees the same word
    pieces whether or not the writer used a hyphen.
  * Apostrophes: typographic ’ ‘ ʼ ´ ` ′ are first mapped to ASCII '. An apostrophe is kept
    only between two letters (l'homme, aujourd'hui, dell'anno, don't, geht's, Ukrainian
    м'ясо); anywhere else, including word-initial and word-final ('hello', students', Italian
    po'), it is a word break. The rule is the same for every alphabetic language, so German
    "gibt's" keeps its apostrophe too; Spanish text almost never contains one.
  * Digits: any Unicode decimal digit (Arabic-Indic, Devanagari, ...) becomes ASCII 0-9,
    digit runs are kept verbatim and split from adjacent letters ("10km" → "10 km", "3,5" →
    "3 5"). Numbers are NOT spelled out: the right reading depends on language, gender and
    context (ordinals, years), Common Voice sentences rarely contain digits, and the
    synthetic corpus spells numbers out.
  * Invisible format characters (soft hyphen, zero-width space/joiner) are deleted; all
    whitespace and control characters collapse to single spaces; no leading/trailing space.
    Combining marks (accents, Arabic harakat, Indic vowel signs) are kept.

Unspaced (zh-CN; also zh-TW, zh-HK, yue, ja, th, ... by their script)
  * NFKC (so full-width ，。！？Ａ０ become ASCII and are then treated like any other
    character), lower-cased.
  * Punctuation, symbols (including 《》“”、), and ALL whitespace are deleted: these
    languages are scored per character, so spaces carry no information and only add noise.
  * Then the language's converter, if it has one. zh-CN: traditional characters converted to
    simplified (OpenCC t2s, one converter per process). zh-TW, zh-HK and yue keep their
    traditional characters: Common Voice writes them so.
  * Latin letters are lower-cased and kept (e.g. "AI技术" → "ai技术"); digits are kept as
    ASCII digits, not converted to 一二三: "2024" may be read 二零二四 or 两千零二十四 and
    only context decides. Sentences containing either can be found with `chars_in_script`.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from asr.languages import LOCALES, UnknownLocaleError, check_locale, language

__all__ = ["LOCALES", "UnknownLocaleError", "check_locale", "chars_in_script", "normalize_text"]

# Characters people type for an apostrophe; all become ASCII ' before the keep/drop decision.
APOSTROPHES = "'\u2019\u2018\u02bc\u00b4\u0060\u2032"


class _CharTable(dict):
    """A `str.translate` table filled lazily, one code point at a time, then cached.

    Unicode has ~1.1M code points, so building the full table up front would cost a second
    at import; real text touches a few thousand, each classified once.
    """

    def __init__(self, classify):
        super().__init__()
        self._classify = classify

    def __missing__(self, codepoint: int):
        value = self._classify(chr(codepoint))
        self[codepoint] = value
        return value


def _alphabetic_char(ch: str) -> str | None:
    if ch in APOSTROPHES:
        return "'"
    category = unicodedata.category(ch)
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    if category == "Cf":  # soft hyphen, zero-width space/joiner: invisible, not a word break
        return None
    if category[0] in "PSZ" or category == "Cc":
        return " "
    return ch


def _unspaced_char(ch: str) -> str | None:
    category = unicodedata.category(ch)
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    if category[0] in "PSZ" or category in ("Cc", "Cf"):
        return None
    return ch


_ALPHABETIC_TABLE = _CharTable(_alphabetic_char)
_UNSPACED_TABLE = _CharTable(_unspaced_char)

_LETTER = r"[^\W\d_]"
# An apostrophe not flanked by letters on both sides.
_STRAY_APOSTROPHE = re.compile(rf"(?<!{_LETTER})'|'(?!{_LETTER})")
# The boundary between a digit run and a letter run, either order.
_DIGIT_LETTER_BOUNDARY = re.compile(rf"(?<=\d)(?={_LETTER})|(?<={_LETTER})(?=\d)")


@functools.cache
def _opencc(config: str):
    """The OpenCC converter of `config` ("t2s"); building it reads dictionaries, so once."""
    import opencc  # imported lazily: users of other languages never pay for it

    return opencc.OpenCC(config)


def _nfkc_lower(text: str) -> str:
    # NFKC first so compatibility letters (ℌ, Ｈ) lower correctly; again after lower() because
    # lower-casing can produce decomposed sequences (İ → i + combining dot).
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).lower())


def _normalize_alphabetic(text: str) -> str:
    text = _nfkc_lower(text).translate(_ALPHABETIC_TABLE)
    text = _STRAY_APOSTROPHE.sub(" ", text)
    text = _DIGIT_LETTER_BOUNDARY.sub(" ", text)
    return " ".join(text.split())


def _normalize_unspaced(text: str, converter: str | None) -> str:
    # Strip punctuation and spaces before conversion: OpenCC converts by phrase, so it must
    # see the same character sequence on every pass or normalisation would not be idempotent.
    text = _nfkc_lower(text).translate(_UNSPACED_TABLE)
    text = "".join(text.split())  # whitespace outside Unicode Z*/Cc (rare) goes too
    return _opencc(converter).convert(text) if text and converter else text


def normalize_text(text: str, locale: str) -> str:
    """Normalise a transcript of `locale` for training targets and scoring (rules: module doc)."""
    lang = language(locale)
    if lang.normaliser == "alphabetic":
        return _normalize_alphabetic(text)
    return _normalize_unspaced(text, lang.converter)


@functools.lru_cache(maxsize=4096)
def _script_of(ch: str) -> str:
    """'digit', 'apostrophe', 'mark', 'han' (CJK ideographs), the script of a letter as the
    first word of its Unicode name lower-cased ('latin', 'cyrillic', 'hiragana'), or 'other'."""
    if ch == "'":
        return "apostrophe"
    if "0" <= ch <= "9":
        return "digit"
    category = unicodedata.category(ch)
    if category[0] == "M":
        return "mark"
    name = unicodedata.name(ch, "")
    if name.startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH")) or ch == "\u3007":
        return "han"
    if category[0] == "L" and name:
        return re.split(r"[ -]", name, maxsplit=1)[0].lower()  # KATAKANA-HIRAGANA ... -> katakana
    return "other"


def chars_in_script(text: str, locale: str, allow_digits: bool = True, allow_latin: bool = True) -> bool:
    """True if normalised `text` only uses the characters expected for `locale`.

    Always: letters of the language's scripts (`Language.scripts`: Latin with diacritics for
    de, Cyrillic for ru, Han for zh-CN, Han and kana for ja), and spaces. Combining marks,
    except in Han-only languages, where none belongs. Apostrophes where the alphabetic
    normaliser keeps them. Digits unless `allow_digits` is False. Latin letters in a language
    written in another script unless `allow_latin` is False ("ai技术"). Use it to count or
    drop sentences a speaker would have read in a way the transcript does not show.
    """
    lang = language(locale)
    allowed = set(lang.scripts) | ({"digit"} if allow_digits else set())
    if allow_latin:
        allowed.add("latin")
    if set(lang.scripts) != {"han"}:
        allowed.add("mark")
    if lang.normaliser == "alphabetic":
        allowed.add("apostrophe")
    return all(_script_of(ch) in allowed for ch in text if not ch.isspace())
