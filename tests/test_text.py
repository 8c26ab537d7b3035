"""Per-language normalisation: a table of examples, the unknown-locale error, idempotence."""

from __future__ import annotations

import pytest

from asr.text import LOCALES, UnknownLocaleError, chars_in_script, normalize_text

EXAMPLES = [
    # (locale, raw, normalised)
    ("de", "Die Straße ist schön.", "die straße ist schön"),
    ("de", "STRASSE und ẞ", "strasse und ß"),  # ß kept, never folded to ss
    ("de", "E-Mail-Adresse, bitte!", "e mail adresse bitte"),  # hyphens split words
    ("de", "Wie geht’s dir?", "wie geht's dir"),
    ("de", "„Guten Tag“, sagte er – leise…", "guten tag sagte er leise"),
    ("fr", "L’homme est là, aujourd’hui !", "l'homme est là aujourd'hui"),
    ("fr", "Peut-être qu'il viendra ; « oui » ?", "peut être qu'il viendra oui"),
    ("fr", "Œuvre d’art", "œuvre d'art"),
    ("es", "¿Qué tal? ¡Muy bien, señor!", "qué tal muy bien señor"),
    ("es", "El niño tiene 10 años.", "el niño tiene 10 años"),
    ("it", "Dell’anno scorso, perché?", "dell'anno scorso perché"),
    ("it", "Un po' di più", "un po di più"),  # word-final apostrophe dropped
    ("en", "'Hello,' she said: \"don't!\"", "hello she said don't"),
    ("en", "The students' books cost $20.", "the students books cost 20"),
    ("en", "A 10km run in 3.5 hours", "a 10 km run in 3 5 hours"),
    ("en", "ﬁne  ｆｕｌｌ-width\ttext\n", "fine full width text"),
    ("en", "soft\u00adhyphen zero\u200bwidth", "softhyphen zerowidth"),
    ("en", "rock 'n' roll", "rock n roll"),
    ("en", "  ", ""),
    ("zh-CN", "你好，世界！", "你好世界"),
    ("zh-CN", "《三国演义》“很好”、对吗？", "三国演义很好对吗"),
    ("zh-CN", "我們的國家很美麗。", "我们的国家很美丽"),
    ("zh-CN", "AI技術 發展 ２０２４年", "ai技术发展2024年"),
    ("zh-CN", "乾隆年间 天气乾燥", "乾隆年间天气干燥"),  # t2s converts by phrase
    ("zh-CN", "他说：“Hello World!”", "他说helloworld"),
]


@pytest.mark.parametrize(("locale", "raw", "expected"), EXAMPLES)
def test_examples(locale, raw, expected):
    assert normalize_text(raw, locale) == expected


@pytest.mark.parametrize(("locale", "raw", "expected"), EXAMPLES)
def test_idempotent(locale, raw, expected):
    once = normalize_text(raw, locale)
    assert normalize_text(once, locale) == once


@pytest.mark.parametrize("locale", LOCALES)
def test_idempotent_on_mixed_junk(locale):
    raw = "Ａｂｃ ’x’ l'été — 3½ %& 中文，漢字 ß ẞ İstanbul ǅ ℌ \u00ad\u200b ‘quoted’ end'"
    once = normalize_text(raw, locale)
    assert normalize_text(once, locale) == once
    assert once == once.strip() and "  " not in once


@pytest.mark.parametrize(("bad", "meant"), [
    ("zh", "zh-CN"), ("EN", "en"), ("DE", "de"), ("zh-cn", "zh-CN"), ("zh-tw", "zh-TW"),
    ("de_DE", "de"), ("pt-br", "pt-BR"), ("xx yy", None), ("", None), ("e", None)])
def test_malformed_locale_is_refused_with_a_hint(bad, meant):
    with pytest.raises(UnknownLocaleError) as info:
        normalize_text("hallo", bad)
    message = str(info.value)
    assert repr(bad) in message and "zh-CN" in message
    assert (f"did you mean {meant!r}" in message) if meant else "did you mean" not in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("locale", "raw", "expected"), [
    ("nl", "Het is 's avonds koud, hè?", "het is s avonds koud hè"),
    ("pt-BR", "Olá, você está bem?", "olá você está bem"),
    ("ru", "Привет, мир!", "привет мир"),
    ("uk", "М’ясо — смачне.", "м'ясо смачне"),
    ("ar", "مرحبا، يا عالم!", "مرحبا يا عالم"),
    ("zh-TW", "我們的國家，很美麗。", "我們的國家很美麗"),  # no t2s: zh-TW keeps traditional
    ("ja", "こんにちは、世界！ カタカナ", "こんにちは世界カタカナ"),
])
def test_locales_beyond_the_six(locale, raw, expected):
    assert normalize_text(raw, locale) == expected
    assert chars_in_script(expected, locale)


def test_zh_has_no_spaces_or_punctuation():
    out = normalize_text("一 二\u3000三，四。五！", "zh-CN")
    assert out == "一二三四五"


def test_chars_in_script():
    assert chars_in_script(normalize_text("L'été à Paris", "fr"), "fr")
    assert not chars_in_script("привет мир", "en")
    assert chars_in_script("abc 12", "en")
    assert not chars_in_script("abc 12", "en", allow_digits=False)
    assert chars_in_script("你好ai2024", "zh-CN")
    assert not chars_in_script("你好ai", "zh-CN", allow_latin=False)
    assert chars_in_script("привет мир", "ru") and not chars_in_script("你好", "ru")
    assert not chars_in_script("hello", "ru", allow_latin=False)
    assert chars_in_script("สวัสดี", "th") and chars_in_script("γεια σου", "el")
    assert chars_in_script("こんにちはカタカナー漢字", "ja") and not chars_in_script("привет", "ja")
    with pytest.raises(UnknownLocaleError):
        chars_in_script("x", "ZZ")
