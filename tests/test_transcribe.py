import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import audio_info
from asr.cli import main
from asr.config import load_run_config
from asr.package import load_package_model, save_model
from asr.segment import AudioSegment, segment_file, split_at_pauses, stream_audio
from asr.train import Trainer
from asr.transcribe import Segment, Transcript, format_transcript

needs_beam_search = pytest.mark.skipif(
    importlib.util.find_spec("flashlight") is None, reason="beam search needs flashlight-text")
LOCALES = ["de", "zh-CN"]
CLOCK = r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d)"


@pytest.fixture(scope="module")
def run_dir(fake_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "run"
    Trainer.from_data(load_run_config("tiny"), fake_data, LOCALES, out, progress=False).fit()
    return out


@pytest.fixture
def talkative_model(run_dir, monkeypatch):
    """The trained model, with its de CTC output replaced by a word every 20 frames (0.8 s),
    so outputs are never empty and timestamps have something to show."""
    from asr.model.multilingual import MultilingualCTC

    pieces = load_package_model(run_dir)[1].tokenizers["de"].pieces
    word = next(i for i, p in enumerate(pieces) if p.startswith("▁") and len(p) > 1)

    def every_twentieth(self, shared, out_lens, locale):
        B, T, _ = shared.shape
        logits = torch.full((B, T, len(pieces)), -10.0)
        logits[:, :, 0] = 0.0
        logits[:, ::20, word] = 5.0  # (B, T', V): a word every 0.8 s, so segments split
        return logits.log_softmax(-1)

    monkeypatch.setattr(MultilingualCTC, "ctc_log_probs", every_twentieth)
    return run_dir


def tone_bursts(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(N, C) float32: 0.6 s tones separated by 0.4 s of near silence."""
    t = np.arange(int(seconds * sr)) / sr
    on = (t % 1.0) < 0.6
    x = 0.2 * np.sin(2 * np.pi * (200 + 50 * seed) * t) * on + 1e-4 * np.random.default_rng(seed).standard_normal(len(t))
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    for k, (ext, sr, ch) in enumerate([("mp3", 48000, 2), ("wav", 8000, 1), ("flac", 44100, 6),
                                       ("ogg", 48000, 1), ("wav", 44100, 2), ("mp3", 8000, 1)]):
        sf.write(d / f"clip{k}.{ext}", tone_bursts(1.5 + 0.5 * k, sr, ch, seed=k), sr)
    return d


def parse_cues(text: str) -> list[tuple[float, float]]:
    cues = []
    for m in re.finditer(CLOCK + " --> " + CLOCK, text):
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, m.groups())
        cues.append((3600 * h1 + 60 * m1 + s1 + ms1 / 1000, 3600 * h2 + 60 * m2 + s2 + ms2 / 1000))
    return cues


def check_times(times: list[tuple[float, float]], duration: float) -> None:
    assert times, "expected at least one timed segment"
    for (s, e), nxt in zip(times, [*times[1:], None], strict=True):
        assert 0.0 <= s <= e <= duration + 1e-3
        if nxt:
            assert e <= nxt[0] + 1e-3


@pytest.mark.parametrize("fmt", ["txt", "json", "srt", "vtt"])
def test_transcribe_formats_round_trip(talkative_model, audio_dir, tmp_path, fmt):
    out = tmp_path / "out"
    assert main(["transcribe", "--model", str(talkative_model), str(audio_dir), "--lang", "de",
                 "--format", fmt, "--out", str(out), "--no-progress"]) == 0
    for audio in sorted(audio_dir.iterdir()):
        duration = audio_info(audio)[0]
        text = (out / f"{audio.stem}.{fmt}").read_text()
        if fmt == "txt":
            assert text.strip()
        elif fmt == "json":
            d = json.loads(text)
            assert d["language"] == "de" and d["text"] and abs(d["duration_seconds"] - duration) < 0.05
            check_times([(s["start_seconds"], s["end_seconds"]) for s in d["segments"]], duration)
        else:
            assert text.startswith("WEBVTT") == (fmt == "vtt")
            cues = parse_cues(text)
            check_times(cues, duration)
            assert len(cues) == int(duration / 0.8 - 1e-9) + 1  # one cue per emitted word


def test_auto_language_reports_probability(run_dir, audio_dir, tmp_path, capsys):
    """--lang auto follows the accuracy recorded when the head was fitted: the toy model's
    (tones, not speech) is refused in one line; the same weights with a record of 97% are
    used, and the JSON carries the detected language and its probability."""
    from asr.lid import LidRecord, record_of

    model, pkg = load_package_model(run_dir)
    recorded = record_of(pkg.meta)
    assert main(["transcribe", "--model", str(run_dir), str(audio_dir / "clip1.wav"),
                 "--no-progress"]) == (0 if min(recorded.accuracy.values()) >= 0.95 else 2)
    err = capsys.readouterr().err
    assert not err or ("held-out" in err and "--lang" in err and len(err.strip().splitlines()) == 1)
    trusted = tmp_path / "trusted.safetensors"
    save_model(trusted, model, pkg.config, pkg.tokenizers, pkg.stats, lid=LidRecord(
        **{**recorded.to_dict(), "accuracy": dict.fromkeys(LOCALES, 0.97)}).to_dict())
    assert main(["transcribe", "--model", str(trusted), str(audio_dir / "clip1.wav"), "--format",
                 "json", "--no-progress"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["language"] in LOCALES and 0.0 < d["language_probability"] <= 1.0


def test_bad_file_is_skipped_and_reported(run_dir, audio_dir, tmp_path, capsys):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"\xff\xfb not really an mp3" * 10)
    out = tmp_path / "out"
    code = main(["transcribe", "--model", str(run_dir), str(audio_dir / "clip0.mp3"), str(bad),
                 str(audio_dir / "clip1.wav"), "--lang", "de", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "broken.mp3" in err and "1 failed" in err
    assert (out / "clip0.txt").exists() and (out / "clip1.txt").exists()
    assert not (out / "broken.txt").exists()


def test_auto_needs_a_language_independent_encoder(fake_data, tmp_path):
    from asr.model.multilingual import MultilingualCTC
    from asr.tokenizer import Tokenizer

    cfg = load_run_config("tiny", ["model.layout=[1,1,0]"])
    toks = {loc: Tokenizer.load(fake_data / loc / "tokenizer.model") for loc in LOCALES}
    model = MultilingualCTC(cfg.model, {loc: t.vocab_size for loc, t in toks.items()})
    from asr.features import FeatureStats

    stats = FeatureStats(np.zeros(80), np.ones(80), 1)
    save_model(tmp_path / "m.safetensors", model, cfg, toks, stats)
    wav = tmp_path / "a.wav"
    sf.write(wav, tone_bursts(1.0, 16000)[:, 0], 16000)
    from asr import load_model

    m = load_model(tmp_path / "m.safetensors")
    assert not m.can_detect_language
    with pytest.raises(ValueError, match="per-language input blocks"):
        m.transcribe(wav)
    assert m.transcribe(wav, lang="zh-CN").language == "zh-CN"


@needs_beam_search
def test_python_api(talkative_model, audio_dir):
    from asr import load_model

    m = load_model(talkative_model)
    assert m.languages == LOCALES
    t = m.transcribe(str(audio_dir / "clip2.flac"), lang="de")
    assert isinstance(t, Transcript) and t.text and all(isinstance(s, Segment) for s in t.segments)
    wave = tone_bursts(2.0, 16000)[:, 0]
    batch = m.transcribe_batch([wave, str(audio_dir / "clip3.ogg")], lang="de", beam=4)
    assert [b.source for b in batch][0] == "<waveform 0>" and len(batch) == 2
    assert batch[0].duration_seconds == pytest.approx(2.0, abs=0.01)


def test_damaged_model_file_is_named(run_dir, tmp_path):
    from asr import load_model
    from asr.checkpoint import CheckpointError

    data = (run_dir / "model.safetensors").read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        load_model(cut)
    flipped = bytearray(data)
    flipped[-100] ^= 0xFF
    (tmp_path / "flip.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="flip.safetensors"):
        load_model(tmp_path / "flip.safetensors")


def test_import_asr_is_light():
    code = "import sys, asr; assert callable(asr.load_model); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_segments_cover_the_file_and_cut_in_pauses(tmp_path):
    sr = 22050
    x = tone_bursts(47.3, sr, 2)
    sf.write(tmp_path / "long.flac", x, sr)
    segs = list(segment_file(tmp_path / "long.flac", max_seconds=10.0))
    assert all(s.duration_seconds <= 10.0 + 1e-6 for s in segs)
    assert sum(len(s.samples) for s in segs) == pytest.approx(47.3 * 16000, abs=200)
    for a, b in zip(segs, segs[1:], strict=False):
        assert b.start_seconds == pytest.approx(a.end_seconds)
        assert (a.end_seconds % 1.0) > 0.6 - 0.05  # cut inside a 0.4 s pause, not a tone
    blocks = list(stream_audio(tmp_path / "long.flac", block_seconds=3.0))
    assert max(len(b) for b in blocks) <= 3.0 * 16000 + 100


def test_split_short_input_is_one_segment():
    (seg,) = split_at_pauses(iter([np.zeros(1600, np.float32)]))
    assert isinstance(seg, AudioSegment) and seg.start_seconds == 0.0 and len(seg.samples) == 1600


def test_formats_by_hand():
    t = Transcript("a.wav", "hallo welt", (Segment(0.0, 1.25, "hallo", "de"),
                                          Segment(61.5, 3725.001, "welt", "de")), "de", None, 3726.0)
    assert format_transcript(t, "txt") == "hallo welt\n"
    assert "00:01:01,500 --> 01:02:05,001\nwelt" in format_transcript(t, "srt")
    assert format_transcript(t, "vtt").startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nhallo")
    assert json.loads(format_transcript(t, "json"))["segments"][1]["text"] == "welt"


def _peak_rss_mb(args: list[str]) -> float:
    """Peak resident memory (MB) of `python -m asr.cli ARGS`, measured in a fresh parent."""
    code = ("import resource, subprocess, sys; "
            "r = subprocess.run([sys.executable, '-m', 'asr.cli', *sys.argv[1:]]); "
            "assert r.returncode == 0, r.returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    # glibc raises its mmap threshold each time a large block is freed, after which big
    # tensors of ever-new shapes land on the heap and fragment it: RSS then creeps up by a
    # few tens of MB before it levels off, whatever the program holds. A fixed threshold
    # makes RSS follow live memory, which is what this test is about.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.strip().splitlines()[-1])


def test_long_file_memory_is_bounded(run_dir, tmp_path):
    peaks = {}
    for minutes in (2, 8):
        path = tmp_path / f"long{minutes}.wav"
        sf.write(path, tone_bursts(60.0 * minutes, 16000)[:, 0], 16000, subtype="PCM_16")
        peaks[minutes] = _peak_rss_mb(["transcribe", "--model", str(run_dir), str(path),
                                       "--lang", "de", "--format", "json", "--out",
                                       str(tmp_path / "out"), "--no-progress", "--threads", "1",
                                       "--batch-seconds", "30"])
        d = json.loads((tmp_path / "out" / f"long{minutes}.json").read_text())
        assert d["duration_seconds"] == pytest.approx(60.0 * minutes, abs=0.01)
    # decoding 8 minutes at once would add 6 min x 16 kHz x 4 B = 23 MB of samples alone,
    # several times that in features and activations; streaming keeps the peak flat once a
    # file is longer than the segment pool (2 x 30 s here)
    assert peaks[8] - peaks[2] < 10, peaks


def test_inconsistent_feature_settings_are_refused(fake_data, tmp_path, capsys):
    """The package's features, the model's input and the statistics must agree on n_mels."""
    import dataclasses

    from asr.config import FeatureConfig, FeatureMismatchError
    from asr.features import FeatureStats
    from asr.model.multilingual import MultilingualCTC
    from asr.tokenizer import Tokenizer
    from asr.transcribe import Transcriber

    cfg = load_run_config("tiny")
    toks = {loc: Tokenizer.load(fake_data / loc / "tokenizer.model") for loc in LOCALES}
    model = MultilingualCTC(cfg.model, {loc: t.vocab_size for loc, t in toks.items()})
    wav = tmp_path / "a.wav"
    sf.write(wav, tone_bursts(1.0, 16000)[:, 0], 16000)
    good = tmp_path / "good.safetensors"
    save_model(good, model, cfg, toks, FeatureStats(np.zeros(80), np.ones(80), 1))
    # a 20 ms clip (2 frames) is padded with silence to the model's shortest input
    short = Transcriber(*load_package_model(good)).run([np.zeros(320, np.float32)], lang="de")
    assert next(short).duration_seconds == pytest.approx(0.02)
    cases = {"features.safetensors": (dataclasses.replace(cfg, features=FeatureConfig(n_mels=40)), 80),
             "stats.safetensors": (cfg, 40)}
    for name, (bad_cfg, bins) in cases.items():
        save_model(tmp_path / name, model, bad_cfg, toks, FeatureStats(np.zeros(bins), np.ones(bins), 1))
        with pytest.raises(FeatureMismatchError, match=f"{name}: features have n_mels="):
            Transcriber(*load_package_model(tmp_path / name))
        assert main(["transcribe", str(wav), "--model", str(tmp_path / name), "--lang", "de",
                     "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and name in err and "Traceback" not in err


def test_an_uncertain_language_is_warned_about(run_dir, audio_dir, tmp_path, capsys):
    """A head with no opinion (every logit equal: 0.5 for two languages) still decodes, in its
    first language, and says per file that the language was a guess."""
    from asr.lid import LidRecord

    model, pkg = load_package_model(run_dir)
    model.lid.reset()
    path = tmp_path / "coin.safetensors"
    save_model(path, model, pkg.config, pkg.tokenizers, pkg.stats, lid=LidRecord(
        dict.fromkeys(LOCALES, 0.97), dict.fromkeys(LOCALES, 10), dict.fromkeys(LOCALES, "dev"),
        dict.fromkeys(LOCALES, 10)).to_dict())
    assert main(["transcribe", "--model", str(path), str(audio_dir / "clip1.wav"), "--format",
                 "json", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["language_probability"] == pytest.approx(0.5)
    assert "clip1.wav: language uncertain (de at 0.50); pass --lang" in out.err
    assert "1 with an uncertain language" in out.err
