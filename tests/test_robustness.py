"""Bad input at every entry point: a parametrised suite over generated fixtures.

Each case checks that the message names the item and what is wrong, that batch jobs (the
feature cache, training data, `asr transcribe`, `asr prepare`, `asr lm`) skip and count the
item and go on, and that the exit status tells: 0 done, 1 some inputs skipped (transcribe),
2 a fatal error, with one line on stderr and no traceback.

    audio              AUDIO: empty, tiny, silent, non-finite, clipped, odd rates, depths and
                       channel counts, corrupt/truncated MP3, text and folders posing as audio,
                       an unreadable file, a 2-hour file
    text and metadata  every bad TSV row of test_commonvoice.BAD_ROWS (tested there one by
                       one) plus wrong scripts and links out of clips/, all in one release
                       with a BOM, CRLF ends and extra columns; fatal TSV and locale errors
    models and configs damaged, foreign and pickled model and state files, bad configs, a
                       language the model lacks

Kills, full disks and damaged caches: test_faults.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import itertools
import json
import os
import pickle
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from cvfake import FakeRelease
from test_commonvoice import BAD_ROWS, EXPECTED_REASON

from asr.audio import AudioError, audio_info, load_audio
from asr.checkpoint import CheckpointError, load_package, save_package
from asr.cli import main
from asr.config import FeatureConfig
from asr.data import LanguageData
from asr.feature_cache import MAX_UTTERANCE_SECONDS, build_cache
from asr.features import num_frames
from asr.fileio import write_jsonl
from asr.segment import stream_audio
from asr.tokenizer import Tokenizer
from data_prep.commonvoice import DROP_REASONS, in_script

SR = 16000
REPO = Path(__file__).resolve().parents[1]


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run `asr ARGV` in this process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# ---- audio ---------------------------------------------------------------------------------

def tone(seconds: float, sr: int = SR, channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    """(N,) or (N, C) float32: a 440 Hz tone."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return x if channels == 1 else np.repeat(x[:, None], channels, axis=1)


def with_sample(value: float) -> np.ndarray:
    x = tone(1.0)
    x[100] = value
    return x


def mp3_bytes(seconds: float = 3.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(seconds), SR, format="MP3")
    return buf.getvalue()


def wav(samples: np.ndarray, sr: int = SR, subtype: str | None = None) -> Callable[[Path], None]:
    return lambda path: sf.write(path, samples, sr, subtype=subtype)


def unreadable(path: Path) -> None:
    sf.write(path, tone(1.0), SR)
    path.chmod(0)


def two_hours(path: Path) -> None:
    """7200 s at 8 kHz, written a minute at a time (13 MB of FLAC, a second to write)."""
    t = np.arange(60 * 8000) / 8000
    minute = (0.05 * np.sin(2 * np.pi * 300 * t) * ((t % 1.0) < 0.5)).astype(np.float32)
    with sf.SoundFile(path, "w", 8000, 1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(120):
            f.write(minute)


@dataclass(frozen=True)
class AudioCase:
    file: str  # name in the fixture folder (stems differ: transcripts are named by them)
    make: Callable[[Path], object]
    problem: str | None  # words the error must hold; None: usable audio
    seconds: float = 0.0  # duration of usable audio


AUDIO = {
    "zero_bytes": AudioCase("zero.mp3", lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "no_frames": AudioCase("noframes.wav", wav(np.zeros(0, np.float32)), "no audio samples"),
    "few_samples": AudioCase("few.wav", wav(tone(1.0)[:5]), None, 5 / SR),
    "silence": AudioCase("silence.wav", wav(np.zeros(SR, np.float32)), None, 1.0),
    "nan": AudioCase("nan.wav", wav(with_sample(np.nan), subtype="FLOAT"), "NaN or infinite"),
    "inf": AudioCase("inf.wav", wav(with_sample(-np.inf), subtype="FLOAT"), "NaN or infinite"),
    "clipped": AudioCase("clipped.wav", wav(np.clip(10 * tone(1.0), -1, 1)), None, 1.0),
    "8khz": AudioCase("rate8k.wav", wav(tone(1.0, 8000), 8000), None, 1.0),
    "96khz": AudioCase("rate96k.wav", wav(tone(1.0, 96000), 96000), None, 1.0),
    "24bit": AudioCase("pcm24.wav", wav(tone(1.0), subtype="PCM_24"), None, 1.0),
    "float_wav": AudioCase("float.wav", wav(tone(1.0), subtype="FLOAT"), None, 1.0),
    "stereo": AudioCase("stereo.wav", wav(tone(1.0, channels=2)), None, 1.0),
    "6_channels": AudioCase("six.wav", wav(tone(1.0, channels=6)), None, 1.0),
    "good_mp3": AudioCase("good.mp3", lambda p: p.write_bytes(mp3_bytes()), None, 3.0),
    "corrupt_mp3": AudioCase("corrupt.mp3", lambda p: p.write_bytes(
        mp3_bytes()[:400] + np.random.default_rng(0).bytes(4000)), "not a readable audio file"),
    "truncated_mp3": AudioCase("truncated.mp3", lambda p: p.write_bytes(
        mp3_bytes()[:len(mp3_bytes()) // 2]), "truncated"),
    "text_as_mp3": AudioCase("notes.mp3", lambda p: p.write_text("not audio at all\n" * 20),
                             "a text file, not audio"),
    "directory_as_wav": AudioCase("folder.wav", lambda p: p.mkdir(), "is a directory"),
    "unreadable": AudioCase("locked.wav", unreadable, "permission denied"),
    "missing": AudioCase("absent.wav", lambda p: None, "no such file"),
    "two_hours": AudioCase("long.flac", two_hours, None, 7200.0),
}
TOO_LONG = f"over the {MAX_UTTERANCE_SECONDS:g} s"  # what the cache says of the 2-hour file


def cache_problem(case: str) -> str | None:
    spec = AUDIO[case]
    return TOO_LONG if spec.seconds > MAX_UTTERANCE_SECONDS else spec.problem


@contextlib.contextmanager
def file_permissions_apply():
    """Make this thread subject to file permissions even as root, by dropping CAP_DAC_OVERRIDE
    and CAP_DAC_READ_SEARCH from its effective set (its own 0700 folders stay usable; the
    chmod-0 file does not). Restored on exit."""
    if os.geteuid() != 0:
        yield
        return

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    libc = ctypes.CDLL(None, use_errno=True)
    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    if libc.capget(ctypes.byref(header), data) != 0:
        pytest.skip("cannot read this thread's capabilities")
    saved = data[0].effective
    data[0].effective &= ~0b110  # CAP_DAC_OVERRIDE (1), CAP_DAC_READ_SEARCH (2)
    if libc.capset(ctypes.byref(header), data) != 0:
        pytest.skip("cannot drop CAP_DAC_OVERRIDE to make a file unreadable as root")
    try:
        yield
    finally:
        data[0].effective = saved
        libc.capset(ctypes.byref(header), data)


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad_audio")
    paths = {}
    for case, spec in AUDIO.items():
        paths[case] = d / spec.file
        spec.make(paths[case])
    with file_permissions_apply(), pytest.raises(PermissionError):
        open(paths["unreadable"], "rb").close()
    return paths


def assert_names(err: AudioError, path: Path, problem: str) -> None:
    assert err.path == str(path) and str(path) in str(err)
    assert problem in err.reason, err.reason


@pytest.mark.parametrize("case", sorted(AUDIO))
def test_audio_decodes_or_names_its_problem(audio_files, case):
    spec, path = AUDIO[case], audio_files[case]
    with file_permissions_apply():
        if spec.problem:
            for read in (load_audio, lambda p: list(stream_audio(p))):
                with pytest.raises(AudioError) as err:
                    read(path)
                assert_names(err.value, path, spec.problem)
            return
        assert audio_info(path)[0] == pytest.approx(spec.seconds, abs=1e-3)
        if spec.seconds > MAX_UTTERANCE_SECONDS:  # refused whole, streamed in bounded blocks
            with pytest.raises(AudioError) as err:
                load_audio(path, max_seconds=MAX_UTTERANCE_SECONDS)
            assert_names(err.value, path, TOO_LONG)
            first = next(stream_audio(path))
            assert first.dtype == np.float32 and 0 < len(first) <= 10 * SR + 100
            return
        x = load_audio(path, max_seconds=MAX_UTTERANCE_SECONDS)
        assert x.dtype == np.float32 and x.ndim == 1 and np.all(np.isfinite(x))
        assert len(x) == pytest.approx(spec.seconds * SR, abs=2)
        streamed = np.concatenate(list(stream_audio(path)))
        assert abs(len(streamed) - len(x)) <= 2


@pytest.fixture(scope="module")
def audio_cache(audio_files, tmp_path_factory):
    """The feature cache of a manifest naming every audio case: (cache, what it printed)."""
    d = tmp_path_factory.mktemp("bad_audio_cache")
    rows = [{"id": case, "audio": str(path), "duration": AUDIO[case].seconds or 1.0,
             "locale": "de", "speaker": "s", "text": "alpha", "norm_text": "alpha"}
            for case, path in audio_files.items()]
    write_jsonl(d / "train.jsonl", rows)
    printed = io.StringIO()
    with file_permissions_apply(), contextlib.redirect_stdout(printed), \
            contextlib.redirect_stderr(io.StringIO()):  # tqdm's bar
        cache = build_cache(d / "train.jsonl", d / "feats", workers=1, progress=True)
    return cache, printed.getvalue(), d


@pytest.mark.parametrize("case", sorted(AUDIO))
def test_feature_cache_skips_and_counts_bad_audio(audio_cache, case):
    cache, _, _ = audio_cache
    problem = cache_problem(case)
    skipped = cache.summary["skipped_ids"]
    if problem:
        assert case not in cache and problem in skipped[case]
    else:
        feats = cache[case]
        assert case not in skipped and np.all(np.isfinite(feats))
        assert len(feats) == num_frames(round(AUDIO[case].seconds * SR))


def test_feature_cache_reports_the_count(audio_cache):
    cache, printed, _ = audio_cache
    bad = sum(cache_problem(c) is not None for c in AUDIO)
    assert cache.summary["skipped"] == bad and len(cache) == len(AUDIO) - bad
    assert f"skipped {bad} of {len(AUDIO)} utterances" in printed and "index.json" in printed


def test_training_data_skips_what_it_cannot_use(audio_cache, fake_data):
    cache, _, d = audio_cache
    tok = Tokenizer.load(fake_data / "de" / "tokenizer.model")
    data = LanguageData("de", d / "train.jsonl", d / "feats", tok, max_utterance_seconds=20.0,
                        features=FeatureConfig())
    bad = sum(cache_problem(c) is not None for c in AUDIO)
    # 5 samples give one feature frame: too short for one output frame, skipped, not a crash
    assert data.skipped == {"not_in_cache": bad, "too_long": 0, "too_short": 1, "empty_target": 0}
    assert len(data) == len(AUDIO) - bad - 1


def test_training_goes_on_past_a_clip_too_short_for_the_model(fake_data, tmp_path):
    from asr.config import load_run_config
    from asr.prepare import feature_dir
    from asr.train import Trainer

    data = tmp_path / "data"
    shutil.copytree(fake_data / "de", data / "de")
    sf.write(tmp_path / "blip.wav", tone(1.0)[:5], SR)
    for split in ("train", "dev"):
        manifest = data / "de" / f"{split}.jsonl"
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        rows.append(dict(rows[0], id="blip", audio=str(tmp_path / "blip.wav"), duration=5 / SR))
        write_jsonl(manifest, rows)
        build_cache(manifest, feature_dir(data, "de", split), progress=False)
    trainer = Trainer.from_data(load_run_config("tiny", ["train.max_steps=4", "train.valid_every=4"]), data,
                      ["de"], tmp_path / "run", progress=False)
    assert trainer.batches.datasets["de"].skipped["too_short"] == 1
    assert trainer.fit()["steps"] == 4


@pytest.fixture(scope="module")
def transcribed(audio_files, tiny_run, tmp_path_factory):
    """`asr transcribe` over every audio case but the 2-hour one (test_faults streams that)."""
    out = tmp_path_factory.mktemp("transcripts")
    files = [audio_files[c] for c in AUDIO if c != "two_hours"]
    stderr = io.StringIO()
    with file_permissions_apply(), contextlib.redirect_stderr(stderr), \
            contextlib.redirect_stdout(io.StringIO()):
        code = main(["transcribe", "--model", str(tiny_run), *map(str, files), "--lang", "de",
                     "--out", str(out), "--no-progress"])
    return code, stderr.getvalue(), out


@pytest.mark.parametrize("case", sorted(set(AUDIO) - {"two_hours"}))
def test_transcribe_skips_and_reports_each_bad_file(transcribed, audio_files, case):
    _, err, out = transcribed
    spec, path = AUDIO[case], audio_files[case]
    transcript = out / (Path(spec.file).stem + ".txt")
    if spec.problem:
        assert re.search(rf"^  {re.escape(str(path))}: .*{re.escape(spec.problem)}", err, re.M), err
        assert not transcript.exists()
    else:
        assert transcript.exists() and str(path) not in err


@pytest.mark.slow
def test_two_hour_file_streams_in_bounded_memory(audio_files, tiny_run, tmp_path):
    from test_transcribe import _peak_rss_mb

    minute = tmp_path / "minute.flac"
    sf.write(minute, tone(60.0, 8000, amplitude=0.05), 8000)
    peaks = {}
    for path in (minute, audio_files["two_hours"]):
        peaks[path.stem] = _peak_rss_mb(["transcribe", "--model", str(tiny_run), str(path), "--lang",
                                         "de", "--format", "json", "--out", str(tmp_path / "out"),
                                         "--no-progress", "--threads", "1", "--batch-seconds", "30"])
    done = json.loads((tmp_path / "out" / "long.json").read_text())
    assert done["duration_seconds"] == pytest.approx(7200.0, abs=0.01)
    assert done["segments"] == sorted(done["segments"], key=lambda s: s["start_seconds"])
    assert peaks["long"] - peaks["minute"] < 30, peaks  # 2 h at 16 kHz alone would be 460 MB


def test_transcribe_counts_failures_in_its_exit_status(transcribed, tiny_run, audio_files, capsys):
    code, err, _ = transcribed
    n = len(AUDIO) - 1
    bad = sum(AUDIO[c].problem is not None for c in AUDIO if c != "two_hours")
    assert code == 1 and f"transcribed {n - bad} of {n} files" in err and f"{bad} failed:" in err
    code, _, err = cli(capsys, "transcribe", "--model", tiny_run, audio_files["silence"],
                       "--lang", "de", "--no-progress")
    assert code == 0 and "transcribed 1 of 1 files" in err


# ---- text and metadata ---------------------------------------------------------------------

def link_out_of_clips(rel: FakeRelease) -> None:
    outside = rel.root / "outside.mp3"
    shutil.copyfile(rel.clips_dir / rel.rows["train"][0]["path"], outside)  # a good clip
    (rel.clips_dir / "escape.mp3").symlink_to(outside)
    rel.add_row("train", path="escape.mp3", clip=None)


NEW_BAD_ROWS = {  # on top of BAD_ROWS: name -> (make the row, drop reason)
    "chinese_in_de": (lambda rel: rel.add_row("train", sentence="这是一个句子。"), "wrong_script"),
    "cyrillic_in_de": (lambda rel: rel.add_row("train", sentence="Привет мир"), "wrong_script"),
    "stray_tab": (lambda rel: rel.add_row("train", sentence="ein\tSatz"), "wrong_field_count"),
    "link_out_of_clips": (link_out_of_clips, "path_outside_clips"),
}


@pytest.fixture(scope="module")
def prepared_bad_release(tmp_path_factory):
    """`asr prepare` of a de release holding every bad row kind once (with a BOM, CRLF line
    ends, extra columns and stray quotes), and a zh-CN one with a Latin-only sentence."""
    root = tmp_path_factory.mktemp("bad_tsv")
    de = FakeRelease(root / "cv", "de", extra_columns=("votes_extra",))
    de.add_rows("train", 3, speakers=2)
    de.add_row("train", sentence='Er sagte "hallo und ging')  # a stray quote is plain text
    for make in BAD_ROWS.values():
        make(de)
    for make, _ in NEW_BAD_ROWS.values():
        make(de)
    de.add_rows("train", 1)
    de.add_rows("dev", 1)
    de.add_rows("test", 1)
    de.write(bom=True, crlf=True)
    zh = FakeRelease(root / "cv", "zh-CN")
    zh.add_rows("train", 3)
    zh.add_row("train", sentence="Only Latin letters here.")
    zh.add_row("train", sentence="AI技术很好。")  # Latin inside Chinese is fine
    zh.add_rows("dev", 1)
    zh.add_rows("test", 1)
    zh.write()
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tokenizer vocabularies clamped on a toy corpus
        code = main(["prepare", "--cv-root", str(root / "cv"), "--locales", "de,zh-CN",
                     "--out", str(root / "data"), "--no-features", "--workers", "1"])
    return code, stdout.getvalue(), root / "data"


def expected_drops() -> dict[str, int]:
    reasons = [EXPECTED_REASON.get(k, k) for k in BAD_ROWS]
    reasons += [reason for _, reason in NEW_BAD_ROWS.values()]
    return {r: reasons.count(r) for r in reasons}


@pytest.mark.parametrize("reason", sorted(expected_drops()))
def test_prepare_skips_and_counts_each_bad_row(prepared_bad_release, reason):
    code, out, _ = prepared_bad_release
    assert code == 0 and reason in DROP_REASONS
    line = next(x for x in out.splitlines() if x.startswith("de/train dropped:"))
    assert f"{reason}={expected_drops()[reason]}" in line
    assert re.search(rf"^  {reason} +{re.escape(DROP_REASONS[reason])}$", out, re.M)


def test_prepare_keeps_exactly_the_good_rows(prepared_bad_release):
    _, out, data = prepared_bad_release
    de = [json.loads(x) for x in (data / "de" / "train.jsonl").read_text().splitlines()]
    # 3 + the quoted sentence + 1 + the first of the duplicated pair
    assert len(de) == 6 and any('"hallo' in r["text"] for r in de)
    zh = [json.loads(x)["norm_text"] for x in (data / "zh-CN" / "train.jsonl").read_text().splitlines()]
    assert len(zh) == 4 and "ai技术很好" in zh and "zh-CN/train dropped: wrong_script=1" in out


@pytest.mark.parametrize("text, locale, ok", [
    ("hallo welt", "de", True), ("niño 3", "es", True), ("l'homme", "fr", True),
    ("你好", "de", False), ("привет", "fr", False), ("γεια", "it", False),
    ("你好", "zh-CN", True), ("ai技术", "zh-CN", True), ("hello", "zh-CN", False),
    ("2024", "zh-CN", False), ("こんにちは", "zh-CN", False),
])
def test_wrong_script_for_the_locale(text, locale, ok):
    assert in_script(text, locale) is ok


def _no_columns(rel):
    rel.write(columns=("client_id", "path", "up_votes"))


def _empty_dev(rel):
    (rel.locale_dir / "dev.tsv").write_bytes(b"")


def _binary_header(rel):
    (rel.locale_dir / "test.tsv").write_bytes(b"\xff\xfe\x00\x01garbage\n")


FATAL_METADATA = {  # name -> (damage the release, locales argument, words of the error)
    "missing_columns": (_no_columns, "de", "lacks column(s) sentence"),
    "empty_tsv": (_empty_dev, "de", "dev.tsv: empty file, no header row"),
    "binary_header": (_binary_header, "de", "test.tsv: header row cannot be read"),
    "missing_tsv": (lambda rel: (rel.locale_dir / "dev.tsv").unlink(), "de", "dev.tsv: not found"),
    "missing_clips": (lambda rel: shutil.rmtree(rel.clips_dir), "de", "no clips folder"),
    "unknown_locale": (lambda rel: None, "de_DE", "unknown locale 'de_DE' (did you mean 'de'?"),
    "locale_case": (lambda rel: None, "zh-cn", "did you mean 'zh-CN'"),
    "absent_locale": (lambda rel: None, "fr", "no such locale folder in the release (found: de)"),
}


@pytest.mark.parametrize("case", sorted(FATAL_METADATA))
def test_unusable_release_is_one_clear_error(tmp_path, capsys, case):
    damage, locales, words = FATAL_METADATA[case]
    rel = FakeRelease(tmp_path / "cv", "de")
    rel.add_rows("train", 2)
    rel.add_rows("dev", 1)
    rel.add_rows("test", 1)
    rel.write()
    damage(rel)
    code, _, err = cli(capsys, "prepare", "--cv-root", rel.root, "--locales", locales,
                       "--out", tmp_path / "data", "--no-features")
    assert code == 2 and words in err and err.count("\n") == 1


def test_lm_text_skips_lines_that_are_not_utf8(fake_data, tmp_path, capsys):
    text = tmp_path / "extra.txt"
    text.write_bytes(b"Hallo Welt\n" + b"Gr\xfc\xdfe aus K\xf6ln\n" + b"alpha bravo\n")
    code, out, err = cli(capsys, "lm", "--data", fake_data, "--locale", "de", "--text", text,
                         "--out", tmp_path / "de.arpa")
    assert code == 0 and f"{text}: skipped 1 line(s) that are not UTF-8" in err
    assert (tmp_path / "de.arpa").exists()


def test_broken_manifest_line_is_named(fake_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(fake_data, data)
    manifest = data / "de" / "train.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:2] + [lines[2][:40]] + lines[3:]) + "\n")
    code, _, err = cli(capsys, "train", "--config", "tiny", "--data", data, "--locales", "de",
                       "--out", tmp_path / "run")
    assert code == 2 and f"{manifest}:3: not valid JSON" in err


@pytest.mark.parametrize("command", [["train", "--config", "tiny", "--data", "{data}", "--out", "{tmp}/r",
                                      "--locales", "XX"],
                                     ["lm", "--data", "{data}", "--out", "{tmp}/x.arpa", "--locale", "XX"]])
def test_unknown_locale_is_named_before_any_work(fake_data, tmp_path, capsys, command):
    argv = [a.format(data=fake_data, tmp=tmp_path) for a in command]
    code, _, err = cli(capsys, *argv)
    assert code == 2 and "unknown locale 'XX'" in err and not (tmp_path / "r").exists()


# ---- models and configs --------------------------------------------------------------------

class Payload:
    """Unpickling this creates `marker`: proof that something unpickled it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"model": Payload(marker)}))


def _write_torch_save(path: Path, marker: Path) -> None:
    torch.save({"weights": torch.zeros(3), "hook": Payload(marker)}, path)


def _flip(path: Path, where: str) -> None:
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    # a digit inside the metadata's feature statistics; a byte deep in the weights
    pos = data.index(b'"mean', 0, header) + 20 if where == "meta" else len(data) - 1000
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))


def _foreign(path: Path, marker: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(4)}, str(path))


def _unknown_locale(path: Path, marker: Path) -> None:
    tensors, meta = load_package(path)
    meta["languages"] = ["de", "XX"]
    save_package(path, tensors, meta)


MODEL_DAMAGE = {  # name -> (damage a copy of model.safetensors, words of the error)
    "missing": (lambda p, m: p.unlink(), "no such model file"),
    "empty": (lambda p, m: p.write_bytes(b""), "not a safetensors file"),
    "truncated": (lambda p, m: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
                  "not a valid safetensors file"),
    "bit_flip_weights": (lambda p, m: _flip(p, "weights"), "checksum mismatch"),
    "bit_flip_metadata": (lambda p, m: _flip(p, "meta"), "checksum mismatch"),
    "pickle": (_write_pickle, "refusing to load it"),
    "torch_save_zip": (_write_torch_save, "refusing to load it"),
    "text": (lambda p, m: p.write_text("just some text, not a model\n" * 5), "not a safetensors file"),
    "foreign_safetensors": (_foreign, "not a polyglot-asr file"),
    "unknown_locale": (_unknown_locale, "unknown locale 'XX'"),
}


@pytest.fixture
def damaged_model(tiny_run, tmp_path, request):
    """(path of a damaged copy of the model file, marker an unpickler would create, words)."""
    damage, words = MODEL_DAMAGE[request.param]
    path, marker = tmp_path / "model.safetensors", tmp_path / "UNPICKLED"
    shutil.copyfile(tiny_run / "model.safetensors", path)
    damage(path, marker)
    return path, marker, words


def _transcribe(model, wav_path):
    return ["transcribe", "--model", model, wav_path, "--lang", "de", "--no-progress"]


def _evaluate(model, wav_path, data):
    return ["evaluate", "--model", model, "--data", data, "--split", "dev", "--no-progress"]


def _finetune(model, wav_path, data):
    return ["train", "--config", "tiny", "--data", data, "--locales", "de", "--init", model,
            "--out", Path(model).parent / "ft"]


@pytest.mark.parametrize("damaged_model", sorted(MODEL_DAMAGE), indirect=True)
def test_damaged_model_is_refused_with_its_name(damaged_model, audio_files, fake_data, capsys):
    from asr import load_model

    path, marker, words = damaged_model
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert str(path) in str(err.value) and words in str(err.value)
    for argv in (_transcribe(path, audio_files["silence"]),
                 _evaluate(path, None, fake_data), _finetune(path, None, fake_data)):
        code, _, stderr = cli(capsys, *argv)
        assert code == 2 and str(path) in stderr and words in stderr, (argv[0], stderr)
    assert not marker.exists(), "a pickle was unpickled"
    assert not (path.parent / "ft").exists()


def test_every_single_bit_flip_is_refused(tmp_path):
    """Every byte of a small package, one bit each: header length, JSON header, metadata and
    tensor bytes. None loads, and every refusal is a CheckpointError naming the file."""
    path = tmp_path / "m.safetensors"
    save_package(path, {"w": torch.randn(8), "tok": torch.arange(10, dtype=torch.uint8)},
                 {"config": {"a": [1, 2.5]}, "languages": ["de"], "stats": {"mean": [0.5]}})
    data = path.read_bytes()
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 1 << (i % 8)
        path.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError, match=re.escape(str(path))):
            load_package(path)


def test_damaged_train_state_is_refused_on_resume(tiny_run, fake_data, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    argv = ["train", "--config", "tiny", "--data", fake_data, "--out", run, "--resume"]
    code, _, err = cli(capsys, *argv, "--locales", "de")  # the run learned de and zh-CN
    assert code == 2 and "belongs to another model" in err and "train_state" in err
    _write_pickle(run / "train_state.safetensors", tmp_path / "UNPICKLED")
    code, _, err = cli(capsys, *argv, "--locales", "de,zh-CN")
    assert code == 2 and "refusing to load it" in err and not (tmp_path / "UNPICKLED").exists()


def test_model_file_missing_from_a_run_directory(tmp_path, capsys, audio_files):
    (tmp_path / "run").mkdir()
    code, _, err = cli(capsys, *_transcribe(tmp_path / "run", audio_files["silence"]))
    assert code == 2 and f"{tmp_path / 'run' / 'model.safetensors'}: no such model file" in err


@pytest.mark.parametrize("argv, words", [
    (["transcribe", "--lang", "fr"], "language 'fr' is not in this model; it has de, zh-CN"),
    (["transcribe", "--lang", "zh-cn"], "language 'zh-cn' is not in this model"),
    (["evaluate", "--locales", "fr"], "has no head for fr (it has de, zh-CN)"),
])
def test_language_the_model_lacks(tiny_run, fake_data, audio_files, capsys, argv, words):
    extra = [audio_files["silence"]] if argv[0] == "transcribe" else ["--data", fake_data]
    code, _, err = cli(capsys, argv[0], "--model", tiny_run, *argv[1:], *extra)
    assert code == 2 and words in err


def test_language_the_model_lacks_in_the_api(tiny_run):
    from asr import load_model

    with pytest.raises(ValueError, match="language 'fr' is not in this model"):
        load_model(tiny_run).transcribe(tone(1.0), lang="fr")


BAD_CONFIGS = {  # name -> (YAML text or --set overrides, words of the error)
    "unknown_key": ("model:\n  dmodel: 64\n", "unknown config key model.dmodel"),
    "wrong_type": ("train:\n  max_steps: many\n", "train.max_steps: expected int, got 'many'"),
    "bool_for_int": ("train:\n  max_steps: true\n", "train.max_steps: expected int, got True"),
    "wrong_literal": ("train:\n  precision: fp8\n", "train.precision: 'fp8' is not one of"),
    "list_for_tuple_item": ("model:\n  layout: [0, two, 0]\n", "model.layout[1]: expected int"),
    "unknown_section": ("optim:\n  lr: 1\n", "unknown config section 'optim'"),
    "not_a_mapping": ("- train\n- model\n", "expected a mapping of sections"),
    "invalid_yaml": ("train: [1, 2\n", "not valid YAML"),
    "python_tag": ("train: !!python/object/apply:os.system ['touch {marker}']\n", "not valid YAML"),
    "set_unknown_key": (["train.lrr=1"], "unknown config key train.lrr"),
    "set_wrong_type": (["train.lr=fast"], "train.lr: expected float, got 'fast'"),
    "set_no_value": (["train.lr"], "bad override 'train.lr'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_names_the_key(fake_data, tmp_path, capsys, case):
    spec, words = BAD_CONFIGS[case]
    marker = tmp_path / "EXECUTED"
    if isinstance(spec, list):
        config, overrides = "tiny", [x for o in spec for x in ("--set", o)]
    else:
        config, overrides = tmp_path / "bad.yaml", []
        config.write_text(spec.format(marker=marker))
    code, _, err = cli(capsys, "train", "--config", config, *overrides, "--data", fake_data,
                       "--locales", "de", "--out", tmp_path / "run")
    assert code == 2 and words in err
    assert not (tmp_path / "run").exists() and not marker.exists()


def test_missing_config_lists_the_shipped_ones(fake_data, tmp_path, capsys):
    code, _, err = cli(capsys, "train", "--config", "tiyn", "--data", fake_data, "--locales", "de",
                       "--out", tmp_path / "run")
    assert code == 2 and "tiyn: no such config file (shipped configs: default, large, small, tiny)" in err


# ---- security ------------------------------------------------------------------------------

FORBIDDEN = {  # what the library never does, as source patterns
    "unpickling": r"\bpickle\.loads?\(|\btorch\.load\(|allow_pickle\s*=\s*True|weights_only\s*=\s*False",
    "unsafe YAML": r"\byaml\.(load|unsafe_load|full_load)\(",
    "a shell": r"shell\s*=\s*True|\bos\.system\(|\bos\.popen\(|\bimport subprocess\b",
    "eval/exec of strings": r"(?<![.\w])(eval|exec)\(",
}


@pytest.mark.parametrize("what", sorted(FORBIDDEN))
def test_library_never_unpickles_or_builds_a_shell(what):
    hits = [f"{p.relative_to(REPO)}:{n}: {line.strip()}"
            for p in itertools.chain((REPO / "asr").rglob("*.py"), (REPO / "data_prep").rglob("*.py"))
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if re.search(FORBIDDEN[what], line) and not line.lstrip().startswith("#")]
    assert not hits, f"{what} in the library:\n" + "\n".join(hits)


def test_shipped_configs_are_plain_values():
    for path in (REPO / "asr" / "configs").rglob("*.yaml"):
        assert "!!" not in path.read_text(), path
        yaml.safe_load(path.read_text())
