"""Sentences for the synthetic corpus: template grammar plus plain frequent-word strings.

Most sentences (85 %) come from the per-language grammars in `data_prep.grammar`: subject,
verb and object with agreement, adverbials, questions, numbers spelled out, punctuation and
capitals as Common Voice's sentence collector shows them. The rest are strings of frequent
words from `wordfreq`, which widen the vocabulary beyond the hand-written lexicons. Lengths
are kept in Common Voice's range: 4-14 words, or 6-20 characters for Chinese.

zh-CN draws on a configurable inventory of common characters (`zh_inventory`), ranked by
frequency in wordfreq's Chinese list with the grammar's own characters first, and checked
once against eSpeak: a character that `cmn-latn-pinyin` does not read as one Mandarin
syllable (it spells a few, such as 兄 or 熊, with English letters) is dropped.
"""

from __future__ import annotations

import functools
import re
from collections import Counter

import numpy as np

from asr.text import normalize_text
from data_prep.grammar import de, en, es, fr, it, zh
from data_prep.grammar.base import capitalize, pick

LOCALES = ("de", "fr", "es", "it", "en", "zh-CN")
WORDS_RANGE = (4, 14)  # words per sentence, European locales
ZH_CHARS_RANGE = (6, 20)  # Chinese characters per sentence
FREQUENT_WORDS_SHARE = 0.15  # sentences that are plain strings of frequent words
FREQUENT_LIST_SIZE = 2500  # how far down wordfreq's ranking those words may come from
ZH_VOICE = "cmn-latn-pinyin"  # reads characters; plain "cmn" reads tone digits as English

_GRAMMARS = {"de": de, "fr": fr, "es": es, "it": it, "en": en}
_CJK = re.compile(r"[\u3400-\u9fff]")
_TONED_SYLLABLE = re.compile(r"^[^\s()]*[1-5ɜ][^\s()]*$")  # one syllable, one tone mark
# vulgar or violent words high in wordfreq's web-text rankings, kept out of the prompts
_BLOCKED = frozenset("""
fuck fucking fucked shit bitch ass damn dick sex hell kill die drug drugs gay porn
scheisse scheiße fick ficken arsch geil nazi nazis töten merde putain con cul sexe baiser
chier tuer bordel mierda puta puto joder culo sexo carajo matar cazzo merda sesso uccidere
""".split())


def sentence_length(text: str, locale: str) -> int:
    """Words (or, for zh-CN, Chinese characters) as the model will see them."""
    if locale == "zh-CN":
        return len(_CJK.findall(text))
    return len(normalize_text(text, locale).split())


def length_ok(text: str, locale: str) -> bool:
    lo, hi = ZH_CHARS_RANGE if locale == "zh-CN" else WORDS_RANGE
    return lo <= sentence_length(text, locale) <= hi


@functools.lru_cache(maxsize=8)
def frequent_words(locale: str) -> tuple[str, ...]:
    """Alphabetic words from the top of wordfreq's list (Chinese: words, not characters)."""
    import wordfreq

    lang = "zh" if locale == "zh-CN" else locale
    ranked = wordfreq.top_n_list(lang, FREQUENT_LIST_SIZE)
    return tuple(w for w in ranked if w.isalpha() and w not in _BLOCKED and
                 (len(w) > 1 or locale == "zh-CN" or w in ("a", "y", "e", "o", "à", "è")))


def _zh_char_ranking() -> list[str]:
    """Chinese characters by summed word frequency in wordfreq's top 30000 words."""
    import wordfreq

    freqs = wordfreq.get_frequency_dict("zh")
    top = sorted(freqs, key=freqs.get, reverse=True)[:30000]
    weight: Counter[str] = Counter()
    for word in top:
        for ch in word:
            if _CJK.match(ch):
                weight[ch] += freqs[word]
    return [ch for ch, _ in weight.most_common()]


def _grammar_chars() -> set[str]:
    lexicon = (zh.SUBJECTS + zh.TIMES + zh.PAST_TIMES + zh.PLACES + zh.VERB_OBJECTS +
               zh.WHAT_VERBS + zh.PERSON_PREDICATES + zh.THING_PREDICATES + zh.MODALS + zh.THINK +
               ["".join(row[:3]) for row in zh.COUNTED] + list(zh._DIGITS) +
               ["在去了吗什么哪里为什么不时候多少钱有桌子上这那块点现因所以但是说请你大家我们一起吧两十"])
    return {ch for w in lexicon for ch in w if _CJK.match(ch)}


def is_mandarin_syllable(phonemes: str) -> bool:
    """eSpeak's IPA for one character is a single toned syllable, not English spelling."""
    return bool(_TONED_SYLLABLE.match(phonemes.strip()))


@functools.lru_cache(maxsize=4)
def zh_inventory(size: int = 300) -> str:
    """The `size` characters zh-CN text may use, most useful first, all readable by eSpeak."""
    from data_prep.espeak import phonemize

    if size < 20:
        raise ValueError(f"zh_inventory_size {size} is too small to write sentences (min 20)")
    ranking = _zh_char_ranking()
    core = _grammar_chars()
    ordered = [c for c in ranking if c in core] + sorted(core - set(ranking))
    ordered += [c for c in ranking if c not in core]
    readable = []
    for start in range(0, len(ordered), 2 * size):  # check only as many as needed
        batch = ordered[start:start + 2 * size]
        readable += [c for c, ph in zip(batch, phonemize(batch, ZH_VOICE), strict=True)
                     if is_mandarin_syllable(ph)]
        if len(readable) >= size:
            break
    if len(readable) < size:
        raise ValueError(f"only {len(readable)} characters available, asked for {size}")
    return "".join(readable[:size])


class SentenceMaker:
    """Draws sentences for one locale: `maker(rng)` -> str, length-checked."""

    def __init__(self, locale: str, zh_inventory_size: int = 300):
        if locale not in LOCALES:
            raise ValueError(f"unknown locale {locale!r}; supported: {', '.join(LOCALES)}")
        self.locale = locale
        if locale == "zh-CN":
            self.inventory = zh_inventory(zh_inventory_size)
            self.zh = zh.ZhGrammar(self.inventory)
            self.words = tuple(w for w in frequent_words(locale)
                               if _CJK.fullmatch(w[0]) and all(_CJK.match(c) for c in w)
                               and self.zh.fits(w))
        else:
            self.words = frequent_words(locale)

    def __call__(self, rng: np.random.Generator, max_tries: int = 1000) -> str:
        for _ in range(max_tries):
            if self.words and rng.random() < FREQUENT_WORDS_SHARE:
                text = self._word_string(rng)
            elif self.locale == "zh-CN" and not self.zh.usable:
                text = self._word_string(rng)
            elif self.locale == "zh-CN":
                text = self.zh.sentence(rng)
            else:
                text = _GRAMMARS[self.locale].sentence(rng)
            if length_ok(text, self.locale):
                return text
        raise RuntimeError(f"no {self.locale} sentence of acceptable length in {max_tries} tries")

    def _word_string(self, rng: np.random.Generator) -> str:
        if self.locale == "zh-CN":
            text = ""
            target = int(rng.integers(ZH_CHARS_RANGE[0], ZH_CHARS_RANGE[1] - 3))
            while len(text) < target:
                text += pick(rng, self.words)
            return text + pick(rng, ("。", "。", "？", "！"))
        n = int(rng.integers(WORDS_RANGE[0], 11))
        return capitalize(" ".join(pick(rng, self.words) for _ in range(n))) + \
            pick(rng, (".", ".", ".", "?", "!"))
