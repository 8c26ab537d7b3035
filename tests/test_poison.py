"""Data that would poison or stall a whole job: caught per item, skipped and counted.

    absurd audio      a float WAV with samples near 1e30, all NaN, an Inf sample: skipped by
                      `asr prepare` with a reason, statistics stay finite; a Failure with a
                      reason in `asr transcribe` (never "" with exit 0)
    special files     a FIFO, a socket, /dev/zero given as audio, manifest or model: refused
                      without being opened (a FIFO would block forever)
    empty languages   a language whose every training utterance is skipped: refused before
                      training, named with its skip counts
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import threading

import numpy as np
import pytest
import soundfile as sf
from cvfake import make_release

from asr.audio import AudioError, load_audio
from asr.cli import main
from asr.config import load_run_config
from asr.feature_cache import FeatureCache, build_cache
from asr.features import FeatureStats, StatsAccumulator
from asr.fileio import read_jsonl, write_jsonl
from asr.prepare import feature_dir
from asr.segment import stream_audio
from asr.train import Trainer, TrainingError

SR = 16000


def tone(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def poisoned(value: float, where: slice = slice(100, 200)) -> np.ndarray:
    x = tone()
    x[where] = value
    return x


POISON = {  # file name -> (samples, words the reason must hold)
    "huge.wav": (poisoned(1e30), "absurd sample values"),
    "large.wav": (poisoned(1e4), "absurd sample values"),
    "all_nan.wav": (np.full(SR, np.nan, np.float32), "NaN or infinite"),
    "inf.wav": (poisoned(np.inf, slice(5, 6)), "NaN or infinite"),
}


def run_cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def poison_files(tmp_path_factory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("poison")
    paths = {}
    for name, (samples, _) in POISON.items():
        sf.write(d / name, samples, SR, subtype="FLOAT")
        paths[name] = d / name
    return paths


# ---- absurd audio ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["huge.wav", "large.wav"])  # NaN and Inf: test_robustness
def test_absurd_audio_is_an_error_naming_the_file(poison_files, name, tmp_path):
    path, words = poison_files[name], POISON[name][1]
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert e.value.path == str(path) and words in e.value.reason
    with pytest.raises(AudioError, match=words):
        list(stream_audio(path))
    sf.write(tmp_path / "hot.wav", 1.9 * np.sign(tone()), SR, subtype="FLOAT")  # hot, not absurd
    assert np.abs(load_audio(tmp_path / "hot.wav")).max() > 1.5


def test_statistics_refuse_non_finite_input():
    acc = StatsAccumulator(4)
    acc.accumulate(np.ones((3, 4)))
    for bad in (np.full((2, 4), np.nan), np.full((2, 4), np.inf), np.full((2, 4), 1e30)):
        with pytest.raises(ValueError, match="refusing"):
            acc.accumulate(bad)
    assert acc.frames == 3 and np.isfinite(acc.result().mean).all()
    with pytest.raises(ValueError, match="NaN"):
        FeatureStats(mean=np.array([np.nan, 0.0]), std=np.ones(2), frames=5)
    with pytest.raises(ValueError, match="non-finite"):
        StatsAccumulator.from_dict({"frames": 3, "sum": [float("nan")], "sumsq": [1.0]})


def test_feature_cache_skips_poisoned_audio_with_finite_statistics(poison_files, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone(), SR)
    rows = [{"id": "good", "audio": str(good)}] + [
        {"id": name, "audio": str(path)} for name, path in poison_files.items()]
    write_jsonl(tmp_path / "m.jsonl", rows)
    cache = build_cache(tmp_path / "m.jsonl", tmp_path / "cache", progress=False)
    assert cache.ids == ["good"]
    assert cache.summary["skipped"] == len(POISON)
    for name, (_, words) in POISON.items():
        assert words in cache.summary["skipped_ids"][name]
    assert np.isfinite(cache.stats.mean).all() and np.isfinite(cache.stats.std).all()


def test_prepare_skips_and_counts_a_poisoned_clip(tmp_path):
    rel = make_release(tmp_path / "cv", "de", train=6, dev=2, test=2)
    clip = rel.clips_dir / rel.rows["train"][0]["path"]  # a float WAV under the clip's name
    sf.write(clip, poisoned(1e30), SR, format="WAV", subtype="FLOAT")
    code, out, _ = run_cli("prepare", "--cv-root", rel.root, "--locales", "de", "--out",
                           tmp_path / "data", "--workers", "1")
    assert code == 0, out
    cache = FeatureCache.open(feature_dir(tmp_path / "data", "de", "train"))
    assert cache.summary["skipped"] == 1
    assert "absurd sample values" in next(iter(cache.summary["skipped_ids"].values()))
    assert np.isfinite(cache.stats.mean).all() and np.isfinite(cache.stats.std).all()


def test_transcribe_reports_poisoned_audio_as_failures(poison_files, tiny_run, tmp_path):
    code, _, err = run_cli("transcribe", "--model", tiny_run, *poison_files.values(), "--lang", "de",
                           "--out", tmp_path / "out", "--no-progress")
    assert code == 1 and f"{len(POISON)} failed" in err
    for name, (_, words) in POISON.items():
        assert f"{poison_files[name]}: " in err and words in err
        assert not (tmp_path / "out" / name.replace(".wav", ".txt")).exists()


def test_transcribe_refuses_a_poisoned_waveform(tiny_run):
    from asr.package import load_package_model
    from asr.transcribe import Failure, Transcriber

    model, package = load_package_model(tiny_run)
    results = list(Transcriber(model, package).run([poisoned(1e30), tone()], lang="de"))
    assert isinstance(results[0], Failure) and "absurd" in results[0].reason
    assert not isinstance(results[1], Failure)


# ---- special files --------------------------------------------------------------------------

@pytest.fixture
def specials(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.wav"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    yield {"fifo": (fifo, "FIFO"), "socket": (sock_path, "socket"),
           "dev_zero": ("/dev/zero", "character device")}
    sock.close()


def no_hang(fn, seconds: float = 20.0):
    """Run fn in a thread; fail (instead of hanging the suite) if it blocks."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            result["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():  # the daemon thread stays blocked; the test fails instead of hanging
        pytest.fail(f"blocked for {seconds} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


@pytest.mark.parametrize("kind", ["fifo", "socket", "dev_zero"])
def test_special_files_are_refused_as_audio(specials, kind):
    path, words = specials[kind]
    with pytest.raises(AudioError) as e:
        no_hang(lambda: load_audio(path))
    assert words in e.value.reason and "refusing to open" in e.value.reason


@pytest.mark.parametrize("kind", ["fifo", "socket", "dev_zero"])
def test_transcribe_refuses_special_files(specials, tiny_run, kind):
    path, words = specials[kind]
    code, _, err = no_hang(lambda: run_cli("transcribe", "--model", tiny_run, path, "--lang", "de",
                                           "--no-progress"))
    assert code == 1 and f"{path}: " in err and words in err


def test_special_files_are_refused_as_manifest_and_model(specials, tiny_run, tmp_path):
    from asr.fileio import SpecialFileError

    fifo = specials["fifo"][0]
    with pytest.raises(SpecialFileError, match="FIFO"):
        no_hang(lambda: read_jsonl(fifo))
    code, _, err = no_hang(lambda: run_cli("transcribe", "--model", fifo, "--lang", "de",
                                           "--no-progress", specials["fifo"][0]))
    assert code != 0 and str(fifo) in err and "FIFO" in err


def test_cache_of_a_manifest_pointing_at_a_fifo_skips_it(specials, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone(), SR)
    write_jsonl(tmp_path / "m.jsonl", [{"id": "good", "audio": str(good)},
                                       {"id": "pipe", "audio": str(specials["fifo"][0])}])
    cache = no_hang(lambda: build_cache(tmp_path / "m.jsonl", tmp_path / "cache", progress=False))
    assert cache.ids == ["good"] and "FIFO" in cache.summary["skipped_ids"]["pipe"]


# ---- languages without usable data ----------------------------------------------------------

def _all_skipped(fake_data, tmp_path, locale: str):
    """A copy of fake_data where every training clip of `locale` is poisoned."""
    data = tmp_path / "data"
    shutil.copytree(fake_data, data)
    bad = tmp_path / "bad.wav"
    sf.write(bad, poisoned(1e30), SR, subtype="FLOAT")
    manifest = data / locale / "train.jsonl"
    write_jsonl(manifest, [dict(r, audio=str(bad)) for r in read_jsonl(manifest)])
    build_cache(manifest, feature_dir(data, locale, "train"), progress=False)
    return data


@pytest.mark.parametrize("start", ["scratch", "init"])
def test_a_language_without_usable_data_is_refused_before_training(fake_data, tiny_run, tmp_path,
                                                                   start):
    data = _all_skipped(fake_data, tmp_path, "zh-CN")
    cfg = load_run_config("tiny", ["train.max_steps=40"])
    with pytest.raises(TrainingError) as e:
        Trainer.from_data(cfg, data, ["de", "zh-CN"], tmp_path / "run", progress=False,
                          init=tiny_run if start == "init" else None)
    msg = str(e.value)
    assert "no usable training data for zh-CN" in msg and "de" not in msg.split("(")[0]
    assert "24 utterances skipped" in msg and "absurd sample values" in msg and "\n" not in msg


def test_a_language_whose_utterances_are_all_filtered_is_refused(fake_data, tiny_run, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fake_data, data)
    manifest = data / "de" / "train.jsonl"
    write_jsonl(manifest, [dict(r, norm_text="") for r in read_jsonl(manifest)])
    cfg = load_run_config("tiny", ["train.max_steps=40"])
    with pytest.raises(TrainingError, match=r"no usable training data for de \(de: 0 usable "
                                            r"utterances, skipped: 24 empty_target\)"):
        Trainer.from_data(cfg, data, ["de", "zh-CN"], tmp_path / "run", progress=False,
                          init=tiny_run)
    code, _, err = run_cli("train", "--config", "tiny", "--data", data, "--locales", "de,zh-CN",
                           "--out", tmp_path / "run2", "--init", tiny_run)
    assert code != 0 and "no usable training data for de" in err and err.count("\n") == 1


def test_statistics_in_a_cache_index_must_be_finite(fake_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(fake_data / "de", data / "de")
    index = feature_dir(data, "de", "train") / "index.json"
    doc = json.loads(index.read_text())
    doc["stats"]["mean"][0] = float("nan")
    index.write_text(json.dumps(doc))
    from asr.feature_cache import FeatureCacheError

    with pytest.raises(FeatureCacheError, match="unusable statistics"):
        _ = FeatureCache.open(index.parent).stats
