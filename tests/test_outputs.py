"""Output that never overwrites or loses data (issue 16, class 1).

    name collisions      several inputs, one stem with several extensions, the same name from
                         two folders: every output has its own name, or the run is refused
                         before anything is decoded
    inputs overwritten   an output that is an input (the same file, through a link) is always
                         refused; an existing file is replaced only with --overwrite
    one writer a folder  `asr train` (and --resume), `asr experiment`, `asr transcribe --out`:
                         a second process gets a one-line error naming the folder and the pid;
                         a stale lock is taken over; the lock goes with its process
    concurrent prepare   two `asr prepare` into one --out both succeed; no process deletes
                         another live process's temporaries
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cvfake import make_release

from asr.cli import main
from asr.fileio import is_live_temporary
from asr.output_names import OutputConflict, plan_outputs
from asr.run_lock import LOCK_NAME, FolderBusyError, FolderLock

ASR = [sys.executable, "-m", "asr.cli"]
ROOT = Path(__file__).resolve().parent.parent


def tone(path: Path, seconds: float = 1.0, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, format="WAV")
    return path  # WAV bytes whatever the name: a .mp3 or .txt name is still read by content


def transcribe(model, *args) -> int:
    return main(["transcribe", "--model", str(model), "--lang", "de", "--no-progress",
                 *map(str, args)])


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class Holder:
    """Another process holding `folder`'s lock until stopped."""

    def __init__(self, folder: Path, what: str = "folder", seconds: float = 120):
        code = ("import sys, time; from asr.run_lock import FolderLock; "
                f"lock = FolderLock(sys.argv[1], {what!r}).acquire(); print('held', flush=True); "
                f"time.sleep({seconds})")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


# ---- name collisions ------------------------------------------------------------------------

def test_same_stems_in_two_folders_get_distinct_outputs(tiny_run, tmp_path):
    d1, d2, out = tmp_path / "d1", tmp_path / "d2", tmp_path / "o"
    sources = [tone(d1 / "clip.mp3", 1.0), tone(d1 / "clip.wav", 1.5), tone(d2 / "clip.wav", 2.0)]
    assert transcribe(tiny_run, d1, d2, "--format", "json", "--out", out) == 0
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert made == ["d1/clip.mp3.json", "d1/clip.wav.json", "d2/clip.json"]
    for src, rel in zip(sources, ["d1/clip.mp3.json", "d1/clip.wav.json", "d2/clip.json"],
                        strict=True):
        assert json.loads((out / rel).read_text())["source"] == str(src)


def test_three_extensions_of_one_stem_in_one_folder(tiny_run, tmp_path):
    for ext in ("wav", "flac", "mp3"):
        tone(tmp_path / "in" / f"take.{ext}")
    tone(tmp_path / "in" / "other.wav")
    assert transcribe(tiny_run, tmp_path / "in", "--out", tmp_path / "o") == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.name != LOCK_NAME) == \
        ["other.txt", "take.flac.txt", "take.mp3.txt", "take.wav.txt"]


def test_a_name_made_by_keeping_an_extension_never_clashes(tmp_path):
    """clip.mp3 -> clip.mp3.txt would be the natural name of clip.mp3.wav: it widens too."""
    for name in ("clip.mp3", "clip.wav", "clip.mp3.wav"):
        tone(tmp_path / "in" / name)
    plan = plan_outputs([tmp_path / "in"], tmp_path / "o", "txt")
    assert sorted(t.name for _, t in plan) == ["clip.mp3.txt", "clip.mp3.wav.txt", "clip.wav.txt"]


def test_same_file_name_from_two_folders_is_refused_before_decoding(tmp_path, capsys):
    a, b = tone(tmp_path / "a" / "x.wav"), tone(tmp_path / "b" / "x.wav")
    # the model does not even exist: the clash is found before anything is loaded
    assert transcribe(tmp_path / "no-model", a, b, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert str(a) in err and str(b) in err and "no-model" not in err
    assert not list((tmp_path / "o").glob("*.txt"))


def test_plan_is_deterministic_and_mirrors_the_tree(tmp_path):
    tone(tmp_path / "in" / "a" / "b.wav")
    tone(tmp_path / "in" / "c.ogg")
    first = plan_outputs([tmp_path / "in"], tmp_path / "o", "srt")
    assert first == plan_outputs([tmp_path / "in"], tmp_path / "o", "srt")
    assert [t.relative_to(tmp_path / "o").as_posix() for _, t in first] == ["a/b.srt", "c.srt"]


# ---- inputs overwritten ---------------------------------------------------------------------

def test_out_in_the_input_folder_never_replaces_an_input(tiny_run, tmp_path, capsys):
    rec = tone(tmp_path / "in" / "rec.txt")  # audio with a .txt name
    before = rec.read_bytes()
    assert transcribe(tiny_run, rec, "--out", tmp_path / "in") == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert rec.read_bytes() == before
    # --overwrite replaces transcripts, never inputs
    assert transcribe(tiny_run, rec, "--out", tmp_path / "in", "--overwrite") == 2
    assert rec.read_bytes() == before


def test_an_input_reached_through_a_link_is_not_replaced(tiny_run, tmp_path, capsys):
    real = tone(tmp_path / "in" / "rec.txt")
    before = real.read_bytes()
    (tmp_path / "link").symlink_to(tmp_path / "in")
    assert transcribe(tiny_run, tmp_path / "link" / "rec.txt", "--out", tmp_path / "in",
                      "--overwrite") == 2
    assert real.read_bytes() == before
    hard = tmp_path / "o" / "rec.txt"  # a hard link to the input, sitting where its output goes
    hard.parent.mkdir()
    os.link(real, hard)
    assert transcribe(tiny_run, real, "--out", tmp_path / "o", "--overwrite") == 2
    assert real.read_bytes() == before and "would overwrite the input" in capsys.readouterr().err


def test_existing_file_beside_the_input_is_kept_unless_overwrite(tiny_run, tmp_path, capsys):
    tone(tmp_path / "in" / "clip.mp3")
    notes = tmp_path / "in" / "clip.txt"
    notes.write_text("my own notes\n")
    assert transcribe(tiny_run, tmp_path / "in", "--out", tmp_path / "in") == 2
    err = capsys.readouterr().err
    assert "clip.txt exists" in err and "--overwrite" in err
    assert notes.read_text() == "my own notes\n"
    assert transcribe(tiny_run, tmp_path / "in", "--out", tmp_path / "in", "--overwrite") == 0
    assert notes.read_text() != "my own notes\n"


def test_out_inside_the_input_folder(tiny_run, tmp_path):
    tone(tmp_path / "in" / "a.wav")
    tone(tmp_path / "in" / "t" / "a.wav")
    assert transcribe(tiny_run, tmp_path / "in", "--out", tmp_path / "in" / "t") == 0
    assert (tmp_path / "in" / "t" / "a.txt").is_file()
    assert (tmp_path / "in" / "t" / "t" / "a.txt").is_file()
    # a rerun finds its own outputs and neither re-reads them as audio nor replaces them
    assert transcribe(tiny_run, tmp_path / "in", "--out", tmp_path / "in" / "t") == 2


def test_a_file_in_the_way_of_an_output_folder_is_refused(tmp_path):
    tone(tmp_path / "in" / "sub" / "a.wav")
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "sub").write_text("a file, not a folder")
    with pytest.raises(OutputConflict, match="is a file, not a folder"):
        plan_outputs([tmp_path / "in"], tmp_path / "o", "txt")


# ---- one writer per folder ------------------------------------------------------------------

def test_lock_is_exclusive_names_the_owner_and_goes_with_it(tmp_path):
    holder = Holder(tmp_path / "run", "run folder")
    try:
        with pytest.raises(FolderBusyError, match=rf"{tmp_path / 'run'}: .*pid {holder.proc.pid}"):
            FolderLock(tmp_path / "run", "run folder").acquire()
    finally:
        holder.stop()
    with FolderLock(tmp_path / "run"):  # the killed holder's lock is stale: taken over
        assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_stale_lock_is_recovered_with_a_message(tmp_path, capsys):
    import socket

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(
        {"pid": dead_pid(), "host": socket.gethostname(), "started": "x", "command": "asr train"}))
    with FolderLock(tmp_path / "run"):
        pass
    assert "took over the lock" in capsys.readouterr().err


def test_lock_is_released_on_an_exception_and_at_exit(tmp_path):
    with pytest.raises(KeyError), FolderLock(tmp_path / "a"):
        raise KeyError("boom")
    assert not (tmp_path / "a" / LOCK_NAME).exists()
    code = ("import sys; from asr.run_lock import FolderLock; "
            "lock = FolderLock(sys.argv[1]).acquire(); raise SystemExit(3)")
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], cwd=ROOT).returncode == 3
    assert not (tmp_path / "b" / LOCK_NAME).exists()


def test_lock_is_reentrant_within_a_process(tmp_path):
    outer = FolderLock(tmp_path).acquire()
    with FolderLock(tmp_path):
        pass
    assert (tmp_path / LOCK_NAME).exists()  # the outer holder still has it
    outer.release()
    assert not (tmp_path / LOCK_NAME).exists()


TRAIN = ["train", "--config", "tiny", "--locales", "de,zh-CN", "--set", "train.max_steps=4",
         "--set", "train.valid_every=2"]


def test_train_refuses_a_run_folder_in_use(fake_data, tmp_path, capsys):
    run = tmp_path / "run"
    holder = Holder(run, "run folder")
    try:
        for extra in ([], ["--resume"]):
            assert main([*TRAIN, "--data", str(fake_data), "--out", str(run), *extra]) == 2
            errors = [x for x in capsys.readouterr().err.splitlines() if "error" in x]
            assert len(errors) == 1 and str(run) in errors[0], errors
            assert f"pid {holder.proc.pid}" in errors[0]
        assert not (run / "metrics.jsonl").exists()
    finally:
        holder.stop()
    assert main([*TRAIN, "--data", str(fake_data), "--out", str(run)]) == 0  # stale: taken over
    assert not (run / LOCK_NAME).exists()


def test_two_trainings_started_together_into_one_folder(fake_data, tmp_path):
    run = tmp_path / "run"
    argv = [*ASR, *TRAIN[:-4], "--set", "train.max_steps=400", "--set", "train.valid_every=100",
            "--data", str(fake_data), "--out", str(run), "--threads", "1"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 240
        while all(p.poll() is None for p in procs):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        loser = next(p for p in procs if p.poll() is not None)
        err = loser.stderr.read()
        assert loser.returncode == 2 and "in use by pid" in err, err
        winner = next(p for p in procs if p is not loser)
        assert f"pid {winner.pid}" in err
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_second_experiment_on_one_folder_is_refused(tmp_path, capsys):
    holder = Holder(tmp_path / "exp", "experiment folder")
    try:
        assert main(["experiment", "--config", "transfer_demo", "--out", str(tmp_path / "exp"),
                     "--no-progress"]) == 2
    finally:
        holder.stop()
    err = capsys.readouterr().err
    assert f"pid {holder.proc.pid}" in err and "experiment folder" in err
    assert not (tmp_path / "exp" / "experiment.yaml").exists()


def test_experiment_run_folder_is_locked_by_its_executor(tmp_path, monkeypatch):
    from asr.experiment import runs

    job = type("J", (), {"run_dir": tmp_path / "r", "strategy": "s", "seed": 0, "hours": 1.0,
                         "key": "k", "locales": ["de"], "data_dir": tmp_path, "carried": None})()
    monkeypatch.setattr(runs, "train_job", lambda *a, **k: None)
    monkeypatch.setattr(runs, "finish_job", lambda *a, **k: (tmp_path / "r" / LOCK_NAME).exists())
    assert runs.execute_job(job, "cpu", {}, progress=False) is True
    holder = Holder(tmp_path / "r", "run folder")
    try:
        with pytest.raises(FolderBusyError):
            runs.execute_job(job, "cpu", {}, progress=False)
    finally:
        holder.stop()


def test_a_second_transcribe_into_one_out_is_refused(tiny_run, tmp_path, capsys):
    tone(tmp_path / "in" / "a.wav")
    holder = Holder(tmp_path / "o", "transcript folder")
    try:
        assert transcribe(tiny_run, tmp_path / "in", "--out", tmp_path / "o") == 2
    finally:
        holder.stop()
    assert f"pid {holder.proc.pid}" in capsys.readouterr().err


# ---- concurrent preparation -----------------------------------------------------------------

def test_two_prepares_into_one_folder_both_succeed(tmp_path):
    for locale in ("de", "zh-CN"):
        make_release(tmp_path / "cv", locale, train=24, dev=4, test=4, speakers=(6, 2, 2),
                     seconds=[0.4, 0.6, 0.8, 1.0])
    argv = [*ASR, "prepare", "--cv-root", str(tmp_path / "cv"), "--locales", "de,zh-CN",
            "--out", str(tmp_path / "data"), "--workers", "2", "--vocab-size", "32"]
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    from asr.feature_cache import FeatureCache

    for locale in ("de", "zh-CN"):
        for split in ("train", "dev", "test"):
            cache = FeatureCache.open(tmp_path / "data" / locale / "feats" / split)
            assert not cache.verify() and len(cache) > 0
    assert not list((tmp_path / "data").rglob(LOCK_NAME))
    assert not [p for p in (tmp_path / "data").rglob(".*") if p.name.endswith(".tmp")]


def test_prepare_waits_for_the_folder_owner(fake_data, tmp_path, capsys):
    from asr.prepare import prepare_data

    data = tmp_path / "data"
    for locale in ("de", "zh-CN"):
        (data / locale).mkdir(parents=True)
        for split in ("train", "dev", "test"):
            (data / locale / f"{split}.jsonl").write_bytes((fake_data / locale / f"{split}.jsonl").read_bytes())
    holder = Holder(data, "data folder", seconds=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_data(data, ["de"], vocab_size=32, units="unigram", workers=1, progress=False)
    holder.proc.wait()
    assert "waiting for pid" in capsys.readouterr().err
    assert (data / "de" / "feats" / "train" / "index.json").exists()


def test_cache_build_keeps_live_temporaries_and_removes_dead_ones(fake_data, tmp_path):
    from asr.feature_cache import build_cache

    cache = tmp_path / "cache"
    cache.mkdir()
    holder = Holder(tmp_path / "elsewhere")  # a live process, as another writer would be
    try:
        live = cache / f".shard-00000.f16.{holder.proc.pid}.abcd1234.tmp"
        dead = cache / f".shard-00000.f16.{dead_pid()}.efgh5678.tmp"
        live.write_bytes(b"in progress")
        dead.write_bytes(b"left by a kill")
        build_cache(fake_data / "de" / "dev.jsonl", cache, progress=False)
        assert live.exists() and not dead.exists()
    finally:
        holder.stop()


def test_temporary_names_carry_their_writer(tmp_path):
    assert not is_live_temporary(tmp_path / f".clip.x.{dead_pid()}.tmp.mp3")
    assert is_live_temporary(tmp_path / f".clip.{os.getpid()}.tmp.mp3")
    assert is_live_temporary(tmp_path / f".index.json.{os.getpid()}.k2j3_x9q.tmp")
    assert not is_live_temporary(tmp_path / ".index.json.k1ll3d.tmp")  # no writer named
