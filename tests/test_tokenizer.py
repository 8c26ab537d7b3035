"""Tokenizers: round trips on held-in text per language and kind, blank never emitted,
unknowns → unk, byte/file serialisation, vocabulary clamp, pinyin."""

from __future__ import annotations

import warnings

import pytest

from asr.pinyin import to_pinyin
from asr.text import normalize_text
from asr.tokenizer import (
    BLANK_ID,
    UNK_ID,
    Tokenizer,
    coverage_report,
    train_tokenizer,
    unseen_rate,
)

RAW = {
    "de": ["Die Straße ist heute sehr schön.", "Wie geht's dir, mein Freund?",
           "Wir fahren morgen mit dem Zug nach Berlin.", "Das Wetter bleibt kühl und nass."],
    "fr": ["L'homme est là, aujourd'hui.", "Nous allons à la plage demain matin.",
           "Peut-être qu'il viendra ce soir.", "Le château est très ancien."],
    "es": ["¿Qué tal estás, señor?", "El niño juega en el jardín.",
           "Mañana vamos a la montaña.", "La ciudad tiene muchas calles."],
    "it": ["Dell'anno scorso non ricordo niente.", "Perché non vieni con noi?",
           "La città è molto bella di sera.", "Il treno parte alle otto."],
    "en": ["Don't stop me now.", "The quick brown fox jumps over the lazy dog.",
           "She sells sea shells by the sea shore.", "We will meet again tomorrow."],
    "zh-CN": ["我們的國家很美麗。", "你好，世界！", "今天天气很好，我们去公园吧。",
              "他说AI技术发展得很快。", "长江是中国最长的河流。"],
}
CORPUS = {loc: [normalize_text(t, loc) for t in texts] * 4 for loc, texts in RAW.items()}
CASES = [(loc, kind) for loc in RAW if loc != "zh-CN" for kind in ("unigram", "bpe", "char")]
CASES += [("zh-CN", "char"), ("zh-CN", "pinyin")]


def _train(locale, kind, vocab_size=60):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny corpora trigger the clamp warning; tested below
        return train_tokenizer(CORPUS[locale], locale=locale, kind=kind, vocab_size=vocab_size)


@pytest.fixture(scope="module")
def tokenizers():
    return {(loc, kind): _train(loc, kind) for loc, kind in CASES}


@pytest.mark.parametrize(("locale", "kind"), CASES)
def test_round_trip_held_in(tokenizers, locale, kind):
    tok = tokenizers[locale, kind]
    assert (tok.locale, tok.kind, tok.blank_id, tok.unk_id) == (locale, kind, 0, 1)
    for text in CORPUS[locale]:
        ids = tok.encode(text)
        assert ids and BLANK_ID not in ids and UNK_ID not in ids
        assert all(0 < i < tok.vocab_size for i in ids)
        expected = to_pinyin(text) if kind == "pinyin" else text
        assert tok.decode(ids) == expected


@pytest.mark.parametrize(("locale", "kind"), CASES)
def test_bytes_and_file_round_trip(tokenizers, tmp_path, locale, kind):
    tok = tokenizers[locale, kind]
    again = Tokenizer.from_bytes(tok.to_bytes())
    assert again == tok and again.pieces == tok.pieces
    path = tmp_path / locale / "tokenizer.model"
    tok.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.model"]  # no temp file left
    loaded = Tokenizer.load(path)
    assert loaded == tok
    sample = CORPUS[locale][0]
    assert loaded.encode(sample) == tok.encode(sample)


def test_pieces_fixed_ids(tokenizers):
    for tok in tokenizers.values():
        assert tok.id_to_piece(0) == "<blank>" and tok.id_to_piece(1) == "<unk>"
        assert tok.vocab_size == len(tok.pieces)


def test_zh_char_unseen_maps_to_unk(tokenizers):
    tok = tokenizers["zh-CN", "char"]
    ids = tok.encode("龘我们")
    assert ids[0] == UNK_ID and UNK_ID not in ids[1:]
    assert tok.decode(ids) == "我们"  # unk is dropped from text
    assert unseen_rate(tok, ["龘我们"]) == pytest.approx(1 / 3)
    assert unseen_rate(tok, CORPUS["zh-CN"]) == 0.0
    assert unseen_rate(tok, []) == 0.0


def test_european_unseen_character(tokenizers):
    tok = tokenizers["en", "unigram"]
    assert UNK_ID in tok.encode("zebra ñ")
    assert BLANK_ID not in tok.encode("zebra ñ")


def test_pinyin_units():
    assert to_pinyin("你好世界") == "ni3 hao3 shi4 jie4"
    assert to_pinyin("的") == "de5"  # neutral tone written as 5
    assert to_pinyin("ai技术2024年") == "a i ji4 shu4 2 0 2 4 nian2"
    assert to_pinyin("") == ""


def test_pinyin_tokenizer_unseen_syllable(tokenizers):
    tok = tokenizers["zh-CN", "pinyin"]
    ids = tok.encode("龙你好")  # long2 never occurs in the corpus
    assert ids[0] == UNK_ID and tok.decode(ids) == "ni3 hao3"


def test_vocab_too_large_is_clamped_with_warning():
    with pytest.warns(UserWarning, match="lowered to"):
        tok = train_tokenizer(CORPUS["en"], locale="en", kind="unigram", vocab_size=5000)
    assert tok.vocab_size < 5000
    text = CORPUS["en"][0]
    assert tok.decode(tok.encode(text)) == text


def test_vocab_too_small_is_raised_with_warning():
    with pytest.warns(UserWarning, match="raised to"):
        tok = train_tokenizer(CORPUS["fr"], locale="fr", kind="bpe", vocab_size=5)
    assert tok.vocab_size > 5


def test_auto_kind_and_bad_arguments():
    assert _train("de", "auto").kind == "unigram"
    assert _train("zh-CN", "auto").kind == "char"
    with pytest.raises(ValueError, match="pinyin"):
        train_tokenizer(CORPUS["en"], locale="en", kind="pinyin")
    with pytest.raises(ValueError, match="kind"):
        train_tokenizer(CORPUS["en"], locale="en", kind="wordpiece")
    with pytest.raises(ValueError, match="no non-empty"):
        train_tokenizer(["", " "], locale="en")
    with pytest.raises(ValueError, match="locale"):
        train_tokenizer(CORPUS["en"], locale="english")


def test_decode_rejects_out_of_range_and_skips_blank(tokenizers):
    tok = tokenizers["zh-CN", "char"]
    ids = tok.encode("你好")
    assert tok.decode([0, ids[0], 0, ids[1], 0]) == "你好"
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([tok.vocab_size])


def test_from_bytes_rejects_foreign_or_truncated(tokenizers, tmp_path):
    data = tokenizers["en", "unigram"].to_bytes()
    with pytest.raises(ValueError, match="truncated"):
        Tokenizer.from_bytes(data[:-10])
    bad = tmp_path / "tokenizer.model"
    bad.write_bytes(b"\x80\x04pickle")
    with pytest.raises(ValueError, match=str(bad)):
        Tokenizer.load(bad)


def test_training_is_deterministic():
    a, b = _train("es", "unigram", 40), _train("es", "unigram", 40)
    assert a.to_bytes() == b.to_bytes()
    c = train_tokenizer(CORPUS["zh-CN"][::-1], locale="zh-CN", kind="char")
    assert c == _train("zh-CN", "char")  # piece order does not depend on sentence order


def test_coverage_report():
    report = coverage_report(CORPUS["zh-CN"], ["龘龘我们"], "zh-CN")
    assert report["unseen_types"] == 1 and report["unseen_tokens"] == 2
    assert report["unseen_token_rate"] == pytest.approx(0.5)
    assert report["most_common_unseen"] == [("龘", 2)]
    syllables = coverage_report(CORPUS["zh-CN"], ["龙"], "zh-CN", kind="pinyin")
    assert syllables["unseen_types"] == 1
