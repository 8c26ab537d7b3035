"""Per-language text normalisation: one function feeds both training targets and scoring.

`normalize_text(text, locale)` is pure and idempotent (normalising twice equals once). The
rules, per script:

European locales (de, fr, es, it, en)
  * Unicode NFKC (full-width forms, ligatures, superscripts become plain characters).
  * Lower-cased with `str.lower()`, not `casefold()`: casefold turns German ß into "ss",
    which would make "Straße" and "Strasse" one word and teach the German head a spelling
    Common Voice transcripts do not use. Capital ẞ lowers to ß as well.
  * Punctuation (Unicode P*) and symbols (S*) become word breaks. That includes hyphens and
    dashes, so "peut-être" → "peut être" and "E-Mail" → "e mail": CTC sees the same word
    pieces whether or not the writer used a hyphen.
  * Apostrophes: typographic ’ ‘ ʼ ´ ` ′ are first mapped to ASCII '. An apostrophe is kept
    only between two letters (l'homme, aujourd'hui, dell'anno, don't, geht's); anywhere
    else, including word-initial and word-final ('hello', students', Italian po'), it is a
    word break. The rule is the same for every European locale, so German "gibt's" keeps
    its apostrophe too; Spanish text almost never contains one.
  * Digits: any Unicode decimal digit becomes ASCII 0-9, digit runs are kept verbatim and
    split from adjacent letters ("10km" → "10 km", "3,5" → "3 5"). Numbers are NOT spelled
    out: the right reading depends on language, gender and context (ordinals, years), Common
    Voice sentences rarely contain digits, and the synthetic corpus spells numbers out.
  * Invisible format characters (soft hyphen, zero-width space/joiner) are deleted; all
    whitespace and control characters collapse to single spaces; no leading/trailing space.

zh-CN
  * NFKC (so full-width ，。！？Ａ０ become ASCII and are then treated like any other
    character), lower-cased.
  * Punctuation, symbols (including 《》“”、), and ALL whitespace are deleted: Chinese is
    scored per character, so spaces carry no information and only add noise.
  * Traditional characters converted to simplified (OpenCC t2s, one converter per process).
  * Latin letters are lower-cased and kept (e.g. "AI技术" → "ai技术"); digits are kept as
    ASCII digits, not converted to 一二三: "2024" may be read 二零二四 or 两千零二十四 and
    only context decides. Sentences containing either can be found with `chars_in_script`.
"""

from __future__ import annotations

import functools
import re
import unicodedata

LOCALES = ("de", "fr", "es", "it", "en", "zh-CN")
EUROPEAN_LOCALES = frozenset(LOCALES) - {"zh-CN"}

# Characters people type for an apostrophe; all become ASCII ' before the keep/drop decision.
APOSTROPHES = "'\u2019\u2018\u02bc\u00b4\u0060\u2032"


class UnknownLocaleError(ValueError):
    """A locale code this toolkit has no normaliser for."""

    def __init__(self, locale: str):
        hint = ""
        prefix = str(locale).lower()[:2]
        matches = [code for code in LOCALES if len(prefix) == 2 and code.lower().startswith(prefix)]
        if matches:
            hint = f" (did you mean {matches[0]!r}? codes are Common Voice's, case-sensitive)"
        super().__init__(f"unknown locale {locale!r}{hint}; supported locales: {', '.join(LOCALES)}")
        self.locale = locale


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


def _european_char(ch: str) -> str | None:
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


def _chinese_char(ch: str) -> str | None:
    category = unicodedata.category(ch)
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    if category[0] in "PSZ" or category in ("Cc", "Cf"):
        return None
    return ch


_EUROPEAN_TABLE = _CharTable(_european_char)
_CHINESE_TABLE = _CharTable(_chinese_char)

_LETTER = r"[^\W\d_]"
# An apostrophe not flanked by letters on both sides.
_STRAY_APOSTROPHE = re.compile(rf"(?<!{_LETTER})'|'(?!{_LETTER})")
# The boundary between a digit run and a letter run, either order.
_DIGIT_LETTER_BOUNDARY = re.compile(rf"(?<=\d)(?={_LETTER})|(?<={_LETTER})(?=\d)")


@functools.lru_cache(maxsize=1)
def _t2s():
    """The OpenCC traditional → simplified converter; building it reads dictionaries, so once."""
    import opencc  # imported lazily: European-only users never pay for it

    return opencc.OpenCC("t2s")


def _nfkc_lower(text: str) -> str:
    # NFKC first so compatibility letters (ℌ, Ｈ) lower correctly; again after lower() because
    # lower-casing can produce decomposed sequences (İ → i + combining dot).
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).lower())


def _normalize_european(text: str) -> str:
    text = _nfkc_lower(text).translate(_EUROPEAN_TABLE)
    text = _STRAY_APOSTROPHE.sub(" ", text)
    text = _DIGIT_LETTER_BOUNDARY.sub(" ", text)
    return " ".join(text.split())


def _normalize_chinese(text: str) -> str:
    # Strip punctuation and spaces before t2s: OpenCC converts by phrase, so it must see the
    # same character sequence on every pass or normalisation would not be idempotent.
    text = _nfkc_lower(text).translate(_CHINESE_TABLE)
    text = "".join(text.split())  # whitespace outside Unicode Z*/Cc (rare) goes too
    return _t2s().convert(text) if text else text


def check_locale(locale: str) -> str:
    """Return `locale` if supported, else raise UnknownLocaleError."""
    if locale not in LOCALES:
        raise UnknownLocaleError(locale)
    return locale


def normalize_text(text: str, locale: str) -> str:
    """Normalise a transcript of `locale` for training targets and scoring (rules: module doc)."""
    check_locale(locale)
    if locale == "zh-CN":
        return _normalize_chinese(text)
    return _normalize_european(text)


@functools.lru_cache(maxsize=4096)
def _script_of(ch: str) -> str:
    """'latin', 'han', 'digit', 'apostrophe', 'mark' or 'other' for one character."""
    if ch == "'":
        return "apostrophe"
    if "0" <= ch <= "9":
        return "digit"
    category = unicodedata.category(ch)
    if category[0] == "M":
        return "mark"
    name = unicodedata.name(ch, "")
    if category[0] == "L" and name.startswith("LATIN"):
        return "latin"
    if name.startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH")) or ch == "\u3007":
        return "han"
    return "other"


def chars_in_script(text: str, locale: str, allow_digits: bool = True, allow_latin: bool = True) -> bool:
    """True if normalised `text` only uses the characters expected for `locale`.

    European: Latin letters (with diacritics), combining marks, apostrophes, spaces and,
    unless `allow_digits` is False, digits. zh-CN: Han characters, plus Latin letters and
    digits unless `allow_latin` / `allow_digits` are False. Use it to count or drop
    sentences a speaker would have read in a way the transcript does not show.
    """
    check_locale(locale)
    allowed = {"digit"} if allow_digits else set()
    if locale == "zh-CN":
        allowed |= {"han"} | ({"latin"} if allow_latin else set())
    else:
        allowed |= {"latin", "mark", "apostrophe"}
    return all(_script_of(ch) in allowed for ch in text if not ch.isspace())
