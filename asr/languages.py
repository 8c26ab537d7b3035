"""One table of per-language facts; every module asks it instead of comparing locale codes.

`language(code) -> Language` gives the record of a Common Voice locale. Fields:

  code             the Common Voice locale, case-sensitive ("de", "pt-BR", "zh-CN").
  name             English name; the code itself for a locale the table does not list.
  scripts          Unicode scripts whose letters the language is written in, main one first,
                   named by the first word of Unicode character names, lower-cased ("latin",
                   "cyrillic", "arabic", "hiragana"), except "han" for CJK ideographs.
                   `asr.text.chars_in_script` accepts these letters.
  word_separator   " " where words are delimited by spaces, "" where they are not (Chinese,
                   Japanese, Thai): transcripts are joined with it and word-initial units
                   found by it.
  primary_metric   the metric a language is judged by: "wer" for spaced languages, "cer" for
                   unspaced ones (and Korean, whose spaced units are too long to count well).
  wer_meaningful   False where references carry no word breaks: WER is then reported but
                   marked, since every sentence would be one "word".
  default_units    tokenizer kind `train_tokenizer(kind="auto")` picks: unigram subwords for
                   spaced languages, characters for unspaced ones.
  normaliser       "alphabetic" (punctuation becomes a word break, apostrophes kept inside
                   words, digit runs split from letters) or "unspaced" (punctuation and all
                   whitespace deleted); the rules are asr/text.py's module docstring.
  converter        OpenCC configuration applied after the unspaced rules, or None
                   (zh-CN: "t2s", traditional characters to simplified).
  romanisation     optional romanised units (zh-CN: toned pinyin): the tokenizer kind, the
                   name of its error rate in results ("ser") and the function that turns
                   normalised text into those units.

Defaults for a locale the table does not list are derived from its script: `SCRIPT_OF_LOCALE`
maps the common non-Latin Common Voice locales to a script, and `UNSPACED_SCRIPTS` says which
scripts are written without spaces (then scored by CER, normalised with the unspaced rules,
char units). Any other well-formed code (lowercase 2-3 letter language, optional "-REGION" in
capitals or "-variant" in lower case: "nl", "pt-BR", "sv-SE", "rm-sursilv") is a spaced
Latin-script language with alphabetic normalisation. A malformed code ("DE", "zh-cn", "de_DE",
"") raises `UnknownLocaleError` with a suggestion: locale codes name files, heads and
reports, so a typo must never become a new language.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from asr.pinyin import pinyin_units

NORMALISERS = ("alphabetic", "unspaced")
BASE_METRICS = ("cer", "wer")  # every language gets both; romanisations add their own
SUBWORD_UNITS = ("unigram", "bpe")  # sentencepiece kinds; vocabulary size applies to these
ALPHABETIC_UNITS = ("char", *SUBWORD_UNITS)  # the `units` choice for spaced languages

# lowercase ISO 639 language, then an optional region (pt-BR) or lowercase variant (rm-sursilv)
_WELL_FORMED = re.compile(r"[a-z]{2,3}(-([A-Z]{2}|[a-z]{4,8}))?")


class UnknownLocaleError(ValueError):
    """A locale code that is not a well-formed Common Voice code."""

    def __init__(self, locale, reason: str = ""):
        suggestion = _suggest(locale)
        hint = (f" (did you mean {suggestion!r}? codes are Common Voice's, case-sensitive)"
                if suggestion else "")
        super().__init__(
            f"unknown locale {locale!r}{hint}{'; ' + reason if reason else ''}; Common Voice codes "
            f"are a lowercase language with an optional -REGION, e.g. {', '.join(LOCALES)}, pt-BR")
        self.locale = locale


@dataclass(frozen=True)
class Romanisation:
    """Romanised output units of a language and the error rate computed over them."""

    kind: str  # tokenizer kind, also the value of `units_for` ("pinyin")
    metric: str  # name of its error rate in results ("ser": toned-syllable error rate)
    unit: str  # what one unit is, for people ("toned syllable")
    units: Callable[[str], list[str]]  # normalised text -> romanised units

    def text(self, text: str) -> str:
        """Normalised text as space-separated romanised units (scored like words)."""
        return " ".join(self.units(text))


@dataclass(frozen=True)
class Language:
    """The facts about one language that the toolkit acts on (fields: module docstring)."""

    code: str
    name: str
    scripts: tuple[str, ...]
    word_separator: str
    primary_metric: str
    wer_meaningful: bool
    default_units: str
    normaliser: str
    converter: str | None = None
    romanisation: Romanisation | None = None

    def __post_init__(self):
        if self.word_separator not in (" ", ""):
            raise ValueError(f"{self.code}: word separator must be ' ' or '', got {self.word_separator!r}")
        if self.normaliser not in NORMALISERS:
            raise ValueError(f"{self.code}: normaliser {self.normaliser!r} is not one of {NORMALISERS}")
        if self.primary_metric not in self.metrics:
            raise ValueError(f"{self.code}: primary metric {self.primary_metric!r} not in {self.metrics}")
        if self.default_units not in self.unit_kinds:
            raise ValueError(f"{self.code}: default units {self.default_units!r} not in {self.unit_kinds}")

    @property
    def script(self) -> str:
        """The main script."""
        return self.scripts[0]

    @property
    def metrics(self) -> tuple[str, ...]:
        """Names of the error rates reported for this language: cer, wer (+ romanised one)."""
        return BASE_METRICS + ((self.romanisation.metric,) if self.romanisation else ())

    @property
    def unit_kinds(self) -> tuple[str, ...]:
        """Tokenizer kinds this language may use."""
        return ALPHABETIC_UNITS + ((self.romanisation.kind,) if self.romanisation else ())


def spaced(code: str, name: str, script: str = "latin", primary_metric: str = "wer") -> Language:
    """The record of a language written with spaces between words."""
    return Language(code, name, (script,), " ", primary_metric, wer_meaningful=True,
                    default_units="unigram", normaliser="alphabetic")


def unspaced(code: str, name: str, scripts: tuple[str, ...] = ("han",), converter: str | None = None,
             romanisation: Romanisation | None = None) -> Language:
    """The record of a language written without spaces, judged by CER on characters."""
    return Language(code, name, scripts, "", "cer", wer_meaningful=False, default_units="char",
                    normaliser="unspaced", converter=converter, romanisation=romanisation)


PINYIN = Romanisation(kind="pinyin", metric="ser", unit="toned syllable", units=pinyin_units)

# The languages this toolkit was built and tested on (synthetic corpus, recipes, examples).
_DESCRIBED = (
    spaced("de", "German"),
    spaced("fr", "French"),
    spaced("es", "Spanish"),
    spaced("it", "Italian"),
    spaced("en", "English"),
    unspaced("zh-CN", "Chinese (China)", converter="t2s", romanisation=PINYIN),
)
LOCALES = tuple(lang.code for lang in _DESCRIBED)

# Scripts written without spaces between words.
UNSPACED_SCRIPTS = frozenset({"han", "thai", "lao", "khmer", "myanmar"})

# Common Voice locales not in Latin script: locale -> (English name, scripts, main first).
SCRIPT_OF_LOCALE: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "ru": ("Russian", ("cyrillic",)), "uk": ("Ukrainian", ("cyrillic",)),
    "be": ("Belarusian", ("cyrillic",)), "bg": ("Bulgarian", ("cyrillic",)),
    "mk": ("Macedonian", ("cyrillic",)), "sr": ("Serbian", ("cyrillic",)),
    "kk": ("Kazakh", ("cyrillic",)), "ky": ("Kyrgyz", ("cyrillic",)), "tt": ("Tatar", ("cyrillic",)),
    "ba": ("Bashkir", ("cyrillic",)), "cv": ("Chuvash", ("cyrillic",)), "sah": ("Sakha", ("cyrillic",)),
    "mn": ("Mongolian", ("cyrillic",)), "myv": ("Erzya", ("cyrillic",)), "ab": ("Abkhaz", ("cyrillic",)),
    "el": ("Greek", ("greek",)),
    "ar": ("Arabic", ("arabic",)), "fa": ("Persian", ("arabic",)), "ur": ("Urdu", ("arabic",)),
    "ug": ("Uyghur", ("arabic",)), "ckb": ("Central Kurdish", ("arabic",)),
    "ps": ("Pashto", ("arabic",)), "he": ("Hebrew", ("hebrew",)),
    "ka": ("Georgian", ("georgian",)), "hy-AM": ("Armenian", ("armenian",)),
    "hi": ("Hindi", ("devanagari",)), "mr": ("Marathi", ("devanagari",)),
    "ne-NP": ("Nepali", ("devanagari",)), "bn": ("Bengali", ("bengali",)),
    "as": ("Assamese", ("bengali",)), "pa-IN": ("Punjabi", ("gurmukhi",)), "or": ("Odia", ("oriya",)),
    "ta": ("Tamil", ("tamil",)), "te": ("Telugu", ("telugu",)), "ml": ("Malayalam", ("malayalam",)),
    "kn": ("Kannada", ("kannada",)), "si": ("Sinhala", ("sinhala",)),
    "am": ("Amharic", ("ethiopic",)), "ti": ("Tigrinya", ("ethiopic",)),
    "dv": ("Dhivehi", ("thaana",)), "zgh": ("Standard Moroccan Tamazight", ("tifinagh",)),
    "ko": ("Korean", ("hangul",)),
    "ja": ("Japanese", ("han", "hiragana", "katakana")),
    "zh-TW": ("Chinese (Taiwan)", ("han",)), "zh-HK": ("Chinese (Hong Kong)", ("han",)),
    "yue": ("Cantonese", ("han",)), "th": ("Thai", ("thai",)), "lo": ("Lao", ("lao",)),
    "km": ("Khmer", ("khmer",)), "my": ("Burmese", ("myanmar",)),
}
# Spaced, but a word of syllable blocks is long: CER is the usual judge.
_CER_SCORED_SPACED = frozenset({"ko"})

# Codes that look well-formed but name no single Common Voice locale.
_AMBIGUOUS = {"zh": "Chinese needs a region: zh-CN, zh-TW or zh-HK (and yue for Cantonese)"}


def _from_script(code: str, name: str, scripts: tuple[str, ...]) -> Language:
    if scripts[0] in UNSPACED_SCRIPTS:
        return unspaced(code, name, scripts)
    return spaced(code, name, scripts[0], primary_metric="cer" if code in _CER_SCORED_SPACED else "wer")


LANGUAGES: Mapping[str, Language] = {
    **{lang.code: lang for lang in _DESCRIBED},
    **{code: _from_script(code, name, scripts) for code, (name, scripts) in SCRIPT_OF_LOCALE.items()},
}


def is_well_formed(code) -> bool:
    """True for a code shaped like Common Voice's ("nl", "pt-BR", "rm-sursilv")."""
    return isinstance(code, str) and _WELL_FORMED.fullmatch(code) is not None and code not in _AMBIGUOUS


@functools.cache
def language(code: str) -> Language:
    """The record of Common Voice locale `code`: the table's, else defaults (module docstring).

    Raises UnknownLocaleError for a malformed code.
    """
    if isinstance(code, str) and code in LANGUAGES:
        return LANGUAGES[code]
    if not is_well_formed(code):
        raise UnknownLocaleError(code, _AMBIGUOUS.get(code, "") if isinstance(code, str) else "")
    return spaced(code, code)


def check_locale(code: str) -> str:
    """Return `code` if it is a usable Common Voice locale, else raise UnknownLocaleError."""
    language(code)
    return code


def _suggest(code) -> str | None:
    """The code a user probably meant: same letters in another case, a listed code with the
    same language part, or the code reshaped to lowercase language + uppercase region."""
    if not isinstance(code, str) or not code.strip():
        return None
    for listed in LANGUAGES:
        if listed.lower() == code.lower():
            return listed
    prefix = code.lower()[:2]
    for listed in LANGUAGES:
        if listed.lower().startswith(prefix) and len(code) >= 2:
            return listed
    m = re.fullmatch(r"([A-Za-z]{2,3})[-_]([A-Za-z]{2})", code.strip())
    if m:
        reshaped = f"{m.group(1).lower()}-{m.group(2).upper()}"
        return reshaped if is_well_formed(reshaped) else None
    return None


def resolve_units(locale: str, units: str = "char", units_for: Mapping[str, str] | None = None) -> str:
    """The tokenizer kind of `locale`: its `units_for` entry if any, else `units` (char,
    unigram or bpe) for a spaced language, else the language's default units (char).

    Every entry of `units_for` is checked, not only `locale`'s, so a misspelt kind fails before
    any work: romanised kinds ("pinyin") only for languages that define them.
    """
    if units not in ALPHABETIC_UNITS:
        raise ValueError(f"units {units!r}: choose one of {', '.join(ALPHABETIC_UNITS)} "
                         "(romanised units go in units_for, e.g. {'zh-CN': 'pinyin'})")
    for code, kind in (units_for or {}).items():
        allowed = language(code).unit_kinds
        if kind not in allowed:
            raise ValueError(f"units {kind!r} for {code}: choose one of {', '.join(allowed)}")
    lang = language(locale)
    if units_for and locale in units_for:
        return units_for[locale]
    return units if lang.word_separator else lang.default_units


def romanised_kinds() -> tuple[str, ...]:
    """Tokenizer kinds of every romanisation in the table ("pinyin")."""
    return tuple(dict.fromkeys(lang.romanisation.kind for lang in LANGUAGES.values() if lang.romanisation))
