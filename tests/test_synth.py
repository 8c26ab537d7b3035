"""The synthetic Common Voice corpus: layout, split hygiene, determinism, resumption, text."""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import audio_info
from asr.text import normalize_text
from data_prep import espeak
from data_prep.grammar import de, en, es, fr, it, zh
from data_prep.sentences import (
    LOCALES,
    WORDS_RANGE,
    ZH_CHARS_RANGE,
    ZH_VOICE,
    SentenceMaker,
    is_mandarin_syllable,
    sentence_length,
    zh_inventory,
)
from data_prep.synth import TSV_COLUMNS, TSV_NAMES, synthesize_corpus
from data_prep.synth_plan import HELDOUT_VARIANTS, TRAIN_VARIANTS, plan_locale

CORPUS_LOCALES = ["de", "zh-CN", "fr"]
ARGS = dict(locales=CORPUS_LOCALES, hours={loc: 0.005 for loc in CORPUS_LOCALES},
            eval_hours=0.003, seed=7, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("cv-synth")
    return root, synthesize_corpus(root, **ARGS)


def read_tsv(path: Path) -> tuple[list[str], list[dict]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return header, [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def rows(root: Path, locale: str, name: str) -> list[dict]:
    return read_tsv(root / locale / f"{name}.tsv")[1]


def test_layout_and_header(corpus):
    root, summary = corpus
    for loc in CORPUS_LOCALES:
        for name in TSV_NAMES:
            header, body = read_tsv(root / loc / f"{name}.tsv")
            assert header == list(TSV_COLUMNS)
            for row in body:
                assert re.fullmatch(rf"common_voice_{re.escape(loc)}_\d{{8}}\.mp3", row["path"])
                assert (root / loc / "clips" / row["path"]).is_file()
                assert re.fullmatch(r"[0-9a-f]{64}", row["client_id"])
                assert row["sentence_id"] == hashlib.sha256(row["sentence"].encode()).hexdigest()
                assert row["locale"] == loc
        assert rows(root, loc, "train") and rows(root, loc, "dev") and rows(root, loc, "test")
        assert summary["locales"][loc]["train"]["clips"] == len(rows(root, loc, "train"))
        header, durations = read_tsv(root / loc / "clip_durations.tsv")
        assert header == ["clip", "duration[ms]"]
        listed = {r["path"] for name in TSV_NAMES for r in rows(root, loc, name)}
        assert {d["clip"] for d in durations} == listed
    assert (root / ".synth.done").exists()
    assert "x real time" in summary["table"]


def test_splits_hygiene(corpus):
    root, _ = corpus
    for loc in CORPUS_LOCALES:
        split = {name: rows(root, loc, name) for name in TSV_NAMES}
        speakers = {name: {r["client_id"] for r in split[name]} for name in ("train", "dev", "test")}
        assert not speakers["train"] & speakers["dev"]
        assert not speakers["train"] & speakers["test"]
        assert not speakers["dev"] & speakers["test"]
        key = {name: [normalize_text(r["sentence"], loc) for r in split[name]]
               for name in ("train", "dev", "test")}
        eval_keys = key["dev"] + key["test"]
        assert len(set(eval_keys)) == len(eval_keys), "dev/test sentences must be unique"
        assert not set(eval_keys) & set(key["train"])
        # validated.tsv holds every split plus its own rows, some of them leaks to avoid
        validated = {r["path"]: r for r in split["validated"]}
        for name in ("train", "dev", "test"):
            assert {r["path"] for r in split[name]} <= set(validated)
        extra = [r for p, r in validated.items()
                 if p not in {r["path"] for n in ("train", "dev", "test") for r in split[n]}]
        assert any(r["client_id"] in speakers["dev"] | speakers["test"] for r in extra)
        assert any(normalize_text(r["sentence"], loc) in eval_keys for r in extra)
        assert any(r["client_id"] not in set().union(*speakers.values()) for r in extra)


def test_eval_speakers_have_unseen_settings():
    clips = plan_locale("de", train_hours=0.2, eval_hours=0.05, seed=3)
    train = {c.speaker for c in clips if c.tsvs[0] == "train"}
    held = {c.speaker for c in clips if c.tsvs[0] in ("dev", "test")}
    train_rates = {s.rate_wpm for s in train}
    assert all(s.rate_wpm not in train_rates for s in held)
    assert all(s.voice[2:] in TRAIN_VARIANTS for s in train)
    assert any(s.voice[2:] in HELDOUT_VARIANTS for s in held)
    counts = sorted((sum(c.speaker == s for c in clips if c.tsvs[0] == "train") for s in train),
                    reverse=True)
    assert counts[0] >= 5 * counts[-1], "a few speakers should record most clips"


def test_regeneration_is_byte_identical_with_other_workers(corpus, tmp_path):
    root, _ = corpus
    again = tmp_path / "again"
    synthesize_corpus(again, **(ARGS | {"workers": 2}))
    files = sorted(p.relative_to(root) for p in root.rglob("*")
                   if p.is_file() and p.name != ".synth.done")
    assert files == sorted(p.relative_to(again) for p in again.rglob("*")
                           if p.is_file() and p.name != ".synth.done")
    assert any(f.suffix == ".mp3" for f in files)
    for f in files:
        assert (root / f).read_bytes() == (again / f).read_bytes(), f


def test_rerun_returns_at_once_and_resume_redoes_only_missing(corpus, tmp_path):
    root, _ = corpus
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    t0 = time.perf_counter()
    assert synthesize_corpus(copy, **ARGS).get("cached") is True
    assert time.perf_counter() - t0 < 1.0
    victim = copy / "fr" / "clips" / rows(copy, "fr", "test")[0]["path"]
    original = victim.read_bytes()
    victim.unlink()
    (copy / ".synth.done").unlink()
    (victim.parent / ".common_voice_fr_1.123.tmp.mp3").write_bytes(b"half a clip")
    summary = synthesize_corpus(copy, **ARGS)
    total = sum(len(read_tsv(copy / loc / "clip_durations.tsv")[1]) for loc in CORPUS_LOCALES)
    assert summary["reused_clips"] == total - 1
    assert victim.read_bytes() == original
    assert not list(victim.parent.glob(".*.tmp.mp3"))


def test_mp3_clips_are_48k_mono_with_listed_durations(corpus):
    root, _ = corpus
    for loc in CORPUS_LOCALES:
        for row in read_tsv(root / loc / "clip_durations.tsv")[1]:
            path = root / loc / "clips" / row["clip"]
            seconds, rate = audio_info(path)
            assert rate == 48000 and sf.info(str(path)).channels == 1
            assert 1.0 < seconds < 15.0
            assert abs(seconds * 1000 - int(row["duration[ms]"])) <= 1


def test_sentence_lengths_in_range(corpus):
    root, _ = corpus
    for loc in CORPUS_LOCALES:
        lo, hi = ZH_CHARS_RANGE if loc == "zh-CN" else WORDS_RANGE
        for name in TSV_NAMES:
            for row in rows(root, loc, name):
                assert lo <= sentence_length(row["sentence"], loc) <= hi, row["sentence"]
    rng = np.random.default_rng(0)
    for loc in LOCALES:
        maker = SentenceMaker(loc)
        texts = [maker(rng) for _ in range(150)]
        assert all(WORDS_RANGE[0] <= sentence_length(t, loc) <= WORDS_RANGE[1]
                   for t in texts if loc != "zh-CN")
        assert len(set(texts)) > 140
        if loc != "zh-CN":
            assert all(next(ch for ch in t if ch.isalpha()).isupper() for t in texts)
            assert any(t.endswith("?") for t in texts) and any("," in t for t in texts)


def test_zh_text_stays_in_an_inventory_espeak_reads(corpus):
    root, _ = corpus
    inventory = zh_inventory(300)
    assert len(inventory) == len(set(inventory)) == 300
    phonemes = espeak.phonemize(list(inventory), ZH_VOICE)
    assert all(is_mandarin_syllable(p) for p in phonemes)
    assert not is_mandarin_syllable(espeak.phonemize(["兄"], ZH_VOICE)[0])  # English-spelt
    assert "兄" not in zh_inventory(2000)
    sentences = [r["sentence"] for name in TSV_NAMES for r in rows(root, "zh-CN", name)]
    for s in sentences:
        assert all(ch in inventory for ch in s if "\u3400" <= ch <= "\u9fff"), s
    small = SentenceMaker("zh-CN", zh_inventory_size=120)
    rng = np.random.default_rng(1)
    assert all(set(re.findall(r"[\u3400-\u9fff]", small(rng))) <= set(small.inventory)
               for _ in range(50))
    for s in sentences[:3]:  # cmn-latn-pinyin speaks characters: ~0.15-0.5 s each
        n_chars = sentence_length(s, "zh-CN")
        seconds = len(espeak.synthesize(s, ZH_VOICE)) / espeak.ESPEAK_SAMPLE_RATE
        assert 0.12 * n_chars < seconds < 0.6 * n_chars + 1.0, (s, seconds)


def test_espeak_is_reproducible_whatever_came_before():
    text = "Der Hund schläft heute im Garten."
    first = espeak.synthesize(text, "de+f2", 150, 40, 60, seed=5)
    espeak.synthesize("Una frase diversa.", "es+m3", 200, seed=9)
    assert np.array_equal(first, espeak.synthesize(text, "de+f2", 150, 40, 60, seed=5))
    assert not np.array_equal(first, espeak.synthesize(text, "de+f2", 150, 40, 60, seed=6))
    with pytest.raises(espeak.EspeakError, match="no voice"):
        espeak.synthesize(text, "xx-nonexistent")


def test_unknown_locale_and_foreign_release_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"'pt'.*supported locales: de, fr"):
        synthesize_corpus(tmp_path, ["de", "pt"], {"de": 0.01, "pt": 0.01})
    with pytest.raises(ValueError, match="no hours for fr"):
        synthesize_corpus(tmp_path, ["fr"], {"de": 0.01})
    (tmp_path / "it").mkdir()
    (tmp_path / "it" / "train.tsv").write_text("client_id\tpath\tsentence\n")
    with pytest.raises(FileExistsError, match="did not write"):
        synthesize_corpus(tmp_path, ["it"], {"it": 0.001}, eval_hours=0.001, progress=False)


@pytest.mark.parametrize("module, n, words", [
    (de, 21, "einundzwanzig"), (de, 97, "siebenundneunzig"), (en, 42, "forty-two"),
    (fr, 71, "soixante et onze"), (fr, 80, "quatre-vingts"), (fr, 99, "quatre-vingt-dix-neuf"),
    (es, 22, "veintidós"), (es, 45, "cuarenta y cinco"), (it, 28, "ventotto"),
    (it, 33, "trentatré"), (zh, 2, "二"), (zh, 35, "三十五"),
])
def test_number_words(module, n, words):
    assert module.number_words(n) == words


def test_a_telephone_channel_changes_only_the_channel(corpus, tmp_path):
    """channels={zh-CN: telephone}: the same clips (texts, voices) as the plain corpus, through
    a 300-3400 Hz line at 5-20 dB SNR; the other locales untouched."""
    from data_prep.synth_plan import CHANNELS

    plain = plan_locale("zh-CN", 0.005, 0.003, seed=7)
    tel = plan_locale("zh-CN", 0.005, 0.003, seed=7, channel="telephone")
    assert [(c.path, c.sentence, c.speaker.voice) for c in plain] == [
        (c.path, c.sentence, c.speaker.voice) for c in tel]
    lo, hi = CHANNELS["telephone"].snr_db
    assert all(c.speaker.band_hz == (300.0, 3400.0) and lo <= c.speaker.snr_db <= hi for c in tel)
    root, _ = corpus
    out = tmp_path / "tel"
    synthesize_corpus(out, **(ARGS | {"locales": ["zh-CN"], "hours": {"zh-CN": 0.005},
                                      "channels": {"zh-CN": "telephone"}}))

    def high_band_share(path: Path) -> float:
        x, sr = sf.read(path)
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / sr)
        return float(power[freqs > 4000].sum() / power.sum())

    name = rows(root, "zh-CN", "train")[0]["path"]
    assert high_band_share(out / "zh-CN" / "clips" / name) < 0.1 * high_band_share(
        root / "zh-CN" / "clips" / name)
    with pytest.raises(ValueError, match="unknown channel"):
        plan_locale("zh-CN", 0.005, 0.003, seed=7, channel="radio")
