"""The language table: lookups, defaults for unlisted locales, refusals, and an unlisted locale
carried end to end through normalisation, tokenisation and scoring."""

from __future__ import annotations

import dataclasses

import pytest

from asr.languages import (
    LANGUAGES,
    LOCALES,
    SCRIPT_OF_LOCALE,
    UnknownLocaleError,
    language,
    resolve_units,
)
from asr.metrics import score_texts
from asr.pinyin import to_pinyin
from asr.prepare import prepare_tokenizer
from asr.text import chars_in_script, normalize_text
from asr.tokenizer import Tokenizer, train_tokenizer


def test_described_languages():
    assert LOCALES == ("de", "fr", "es", "it", "en", "zh-CN")
    de, zh = language("de"), language("zh-CN")
    assert (de.name, de.script, de.word_separator, de.primary_metric) == ("German", "latin", " ", "wer")
    assert de.wer_meaningful and de.normaliser == "alphabetic" and de.romanisation is None
    assert de.metrics == ("cer", "wer") and "pinyin" not in de.unit_kinds
    assert (zh.script, zh.word_separator, zh.primary_metric, zh.default_units) == ("han", "", "cer", "char")
    assert not zh.wer_meaningful and zh.normaliser == "unspaced" and zh.converter == "t2s"
    assert zh.metrics == ("cer", "wer", "ser") and zh.romanisation.kind == "pinyin"
    assert zh.romanisation.text("你好") == to_pinyin("你好") == "ni3 hao3"


def test_records_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        language("de").word_separator = ""


@pytest.mark.parametrize("code", ["nl", "pt-BR", "sv-SE", "ca", "rm-sursilv", "xx"])
def test_unlisted_well_formed_locale_gets_spaced_latin_defaults(code):
    assert code not in LANGUAGES
    lang = language(code)
    assert (lang.code, lang.name, lang.scripts, lang.word_separator) == (code, code, ("latin",), " ")
    assert (lang.primary_metric, lang.wer_meaningful, lang.normaliser) == ("wer", True, "alphabetic")
    assert lang.default_units == "unigram" and lang.metrics == ("cer", "wer")


@pytest.mark.parametrize(("code", "script", "separator", "metric"), [
    ("ru", "cyrillic", " ", "wer"), ("uk", "cyrillic", " ", "wer"), ("el", "greek", " ", "wer"),
    ("ar", "arabic", " ", "wer"), ("fa", "arabic", " ", "wer"), ("ko", "hangul", " ", "cer"),
    ("ja", "han", "", "cer"), ("zh-TW", "han", "", "cer"), ("yue", "han", "", "cer"),
    ("th", "thai", "", "cer"),
])
def test_scripts_of_non_latin_locales(code, script, separator, metric):
    lang = language(code)
    assert (lang.script, lang.word_separator, lang.primary_metric) == (script, separator, metric)
    assert lang.wer_meaningful == bool(separator)
    assert lang.normaliser == ("alphabetic" if separator else "unspaced")
    assert lang.converter is None and lang.romanisation is None  # only zh-CN converts and romanises


def test_every_mapped_locale_is_a_valid_record():
    for code in SCRIPT_OF_LOCALE:
        lang = language(code)
        assert lang is LANGUAGES[code] and lang.name != code
        assert normalize_text("", code) == ""


@pytest.mark.parametrize("bad", ["DE", "zh-cn", "xx yy", "", "zh", "de_DE", "pt-br", "en-us", None, 3])
def test_malformed_codes_are_refused(bad):
    with pytest.raises(UnknownLocaleError, match="unknown locale"):
        language(bad)


def test_resolve_units():
    assert resolve_units("de") == "char"
    assert resolve_units("de", "unigram") == "unigram"
    assert resolve_units("nl", "bpe") == "bpe"
    assert resolve_units("zh-CN", "unigram") == "char"  # unspaced: the record's default
    assert resolve_units("ja", "bpe") == "char"
    assert resolve_units("zh-CN", "bpe", {"zh-CN": "pinyin"}) == "pinyin"
    assert resolve_units("de", "char", {"zh-CN": "pinyin", "de": "unigram"}) == "unigram"
    with pytest.raises(ValueError, match="pinyin"):
        resolve_units("de", "char", {"de": "pinyin"})  # no romanisation for German
    with pytest.raises(ValueError, match="pinyn"):
        resolve_units("de", "char", {"zh-CN": "pinyn"})  # another locale's typo fails too
    with pytest.raises(ValueError, match="units 'pinyin'"):
        resolve_units("zh-CN", "pinyin")
    with pytest.raises(UnknownLocaleError):
        resolve_units("de", "char", {"zh-cn": "pinyin"})


def test_unlisted_cyrillic_locale_end_to_end(tmp_path):
    raw = ["Привет, мир!", "Как дела?", "Мир — это труд, май."]
    texts = [normalize_text(t, "ru") for t in raw]
    assert texts[0] == "привет мир" and all(chars_in_script(t, "ru") for t in texts)
    tok = train_tokenizer(texts, "ru", kind="char")
    for t in texts:
        assert tok.decode(tok.encode(t)) == t
        assert 1 not in tok.encode(t)  # every character seen in training
    assert Tokenizer.from_bytes(tok.to_bytes()) == tok
    with pytest.raises(ValueError, match="pinyin"):
        train_tokenizer(texts, "ru", kind="pinyin")

    scores = score_texts(["привет мир", "как дела"], ["привет мор", "как дела"], "ru")
    assert set(scores) == {"cer", "wer"}  # no romanised rate for Russian
    assert scores["wer"]["rate"] == pytest.approx(1 / 4) and scores["wer"]["meaningful"]
    assert scores["cer"]["rate"] == pytest.approx(1 / 16)
    assert scores["cer"]["per_utterance_errors"] == [1, 0]
    lo, hi = scores["wer"]["ci95"]
    assert lo <= scores["wer"]["rate"] <= hi


def test_unlisted_latin_locale_prepares_a_tokenizer(tmp_path):
    (tmp_path / "pt-BR").mkdir()
    lines = ['{"norm_text": "olá você está bem"}', '{"norm_text": "tudo bem"}']
    (tmp_path / "pt-BR" / "train.jsonl").write_text("\n".join(lines) + "\n")
    tok = prepare_tokenizer(tmp_path, "pt-BR", vocab_size=16, units="char")
    assert tok.kind == "char" and tok.decode(tok.encode("tudo bem")) == "tudo bem"


def test_zh_has_ser_and_validation_can_skip_it():
    full = score_texts(["你好世界"], ["你好是界"], "zh-CN")
    assert set(full) == {"cer", "wer", "ser"} and not full["wer"]["meaningful"]
    # 世 and 是 are both shi4: one character wrong, every syllable right
    assert full["cer"]["rate"] == pytest.approx(1 / 4) and full["ser"]["rate"] == 0.0
    assert full["ser"]["reference_units"] == 4
    cheap = score_texts(["你好世界"], ["你好是界"], "zh-CN", intervals=False, metrics=("cer",))
    assert set(cheap) == {"cer"} and cheap["cer"]["ci95"] is None
    with pytest.raises(ValueError, match="ser"):
        score_texts(["a"], ["a"], "de", metrics=("ser",))
