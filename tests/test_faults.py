"""Injected faults: kill -9, non-finite losses, a full disk, damaged caches.

Every kill is followed by a rerun that must end equal to an uninterrupted run, with no
temporary or half-written file left and no worker process outliving the killed one:

    kill -9 at random moments  synthesis, feature caching, training (several random steps
                               in a row), an experiment sweep with two parallel jobs
    kill -9 inside a write     a checkpoint, the best-model copy, the training state, a
                               metrics line, the run summary (the process kills itself
                               halfway through the bytes, so the point is exact)
    non-finite loss            NaN/inf injected at chosen steps: skipped and counted; an
                               abort with a clear message after train.max_bad_steps in a row
    full disk                  a file-size limit (RLIMIT_FSIZE, `ulimit -f`) while writing
                               features and a checkpoint: a clear error, the previous files load
    damaged cache              a flipped bit, a cut shard, a garbled index: found before any
                               training reads them, and rebuilt by rerunning prepare

The kill tests are slow (`make test-all`); the rest run in `make test`.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cvfake import make_release

from asr.checkpoint import load_package
from asr.cli import main
from asr.config import load_run_config
from asr.fileio import read_jsonl
from asr.train import Trainer

TESTS = Path(__file__).resolve().parent
ASR = [sys.executable, "-m", "asr.cli"]
LOCALES = ["de", "zh-CN"]
# fp32 on every CPU: the reference trains in this process (tests see a CPU without native
# bf16, conftest.py), the interrupted runs in child processes that see the real one
TRAIN_SET = ["train.max_steps=40", "train.valid_every=10", "train.log_every=2",
             "train.keep_checkpoints=2", "train.precision=fp32"]
VARYING = {"time", "audio_seconds_per_second", "build_seconds", "compute_seconds",  # timings
           "x_real_time", "x_real_time_per_worker", "train_seconds", "render_seconds",
           "render_wall_seconds", "plan_seconds", "fit_seconds", "workers",
           "run_dir", "pretrain", "manifest", "model_path"}  # paths


# ---- helpers --------------------------------------------------------------------------------

def strip(value):
    """JSON-like `value` without timings and paths, which differ between equal runs."""
    if isinstance(value, dict):
        return {k: [Path(p).name for p in v] if k == "checkpoints" else strip(v)
                for k, v in value.items() if k not in VARYING}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def temporaries(root: Path) -> list[Path]:
    """Files an interrupted write leaves: atomic_write's `.<name>.<pid>.<rand>.tmp`, synth's
    `.<clip>.<pid>.tmp.mp3`."""
    return [p for p in root.rglob(".*") if p.name.endswith((".tmp", ".tmp.mp3"))]


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def run_and_kill(argv: list, ready, delay: float, log: Path, **popen) -> int | None:
    """Start `argv` in a session of its own, wait until `ready()`, then `delay` seconds, then
    kill -9 its main process only. Returns None when killed (after checking that every worker
    it started exits by itself within 5 s), or the exit status if it ended first."""
    with open(log, "a") as err:
        proc = subprocess.Popen([str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, **popen)
    try:
        deadline = time.monotonic() + 180
        while not ready():
            if proc.poll() is not None:
                return proc.returncode
            assert time.monotonic() < deadline, f"never ready: {argv}"
            time.sleep(0.02)
        time.sleep(delay)
        if proc.poll() is not None:
            return proc.returncode
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not group_members(proc.pid), "workers outlived their killed parent"
        return None
    finally:
        for pid in group_members(proc.pid):  # only after a failure: leave nothing running
            os.kill(pid, signal.SIGKILL)


def logged_step(run: Path) -> int:
    """The last training step in run/metrics.jsonl (0 before the first)."""
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [0]
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("kind") == "train":
            steps.append(row["step"])
    return max(steps)


def tensors_equal(a: Path, b: Path) -> None:
    (ta, ma), (tb, mb) = load_package(a), load_package(b)
    assert sorted(ta) == sorted(tb), (a, b)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), (a, k)
    assert strip(ma) == strip(mb), (a, b)


def metrics(run: Path) -> list[dict]:
    return strip(read_jsonl(run / "metrics.jsonl"))


def assert_same_run(run: Path, reference: Path) -> None:
    """`run` (interrupted and resumed) ended exactly as the uninterrupted `reference`."""
    assert not temporaries(run), temporaries(run)
    for name in ("summary.json", "config.json", "run.json"):
        assert strip(json.loads((run / name).read_text())) == \
            strip(json.loads((reference / name).read_text())), name
    assert metrics(run) == metrics(reference)
    names = sorted(p.name for p in (reference / "checkpoints").iterdir())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == names
    for rel in ["model.safetensors", "train_state.safetensors", *(f"checkpoints/{n}" for n in names)]:
        tensors_equal(run / rel, reference / rel)


def assert_same_data(data: Path, reference: Path) -> None:
    """Prepared data dirs of two locales equal: manifests, tokenizers, feature shards, indexes."""
    compared = 0
    for path in sorted(reference.rglob("*")):
        if path.suffix in (".f16", ".jsonl", ".model"):
            assert (data / path.relative_to(reference)).read_bytes() == path.read_bytes(), path
            compared += 1
        elif path.name == "index.json":
            got = json.loads((data / path.relative_to(reference)).read_text())
            assert strip(got) == strip(json.loads(path.read_text())), path
    assert compared == 2 * (3 + 3 + 1)  # per locale: 3 manifests, 3 shards, a tokenizer


def train(data: Path, out: Path, *overrides: str) -> dict:
    resume = (out / "train_state.safetensors").exists()
    return Trainer.from_data(load_run_config("tiny", [*TRAIN_SET, *overrides]), data, LOCALES, out,
                   resume=resume, progress=False).fit()


@pytest.fixture(scope="module")
def reference_run(fake_data, tmp_path_factory) -> Path:
    """40 uninterrupted steps of the tiny config, validated and checkpointed every 10."""
    out = tmp_path_factory.mktemp("reference") / "run"
    train(fake_data, out)
    return out


def file_size_limit(max_bytes: int):
    """A preexec_fn: no file this process writes may grow past `max_bytes` (`ulimit -f`)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


# ---- non-finite losses ----------------------------------------------------------------------

def inject_losses(monkeypatch, bad: dict[int, float] | None = None, from_step: int | None = None):
    """Replace the loss at the given steps (self.step before the update) with NaN or inf."""
    real = Trainer._loss

    def loss(self, batch, generator):
        value, parts = real(self, batch, generator)
        if bad and self.step in bad:
            value = value * 0 + bad[self.step]
        if from_step is not None and self.step >= from_step:
            value = value * 0 + float("nan")
        return value, parts

    monkeypatch.setattr(Trainer, "_loss", loss)


def test_non_finite_loss_is_skipped_and_counted(fake_data, tmp_path, monkeypatch):
    inject_losses(monkeypatch, {3: float("nan"), 4: float("inf"), 8: -float("inf")})
    changed = {}
    real_update = Trainer.update

    def update(self):
        before = [p.detach().clone() for p in self.model.parameters()]
        step, stats = self.step, real_update(self)
        changed[step] = any(not torch.equal(a, p) for a, p in zip(before, self.model.parameters(),
                                                                    strict=True))
        return stats

    monkeypatch.setattr(Trainer, "update", update)
    summary = train(fake_data, tmp_path / "run", "train.max_steps=12", "train.valid_every=6")
    assert summary["steps"] == 12 and summary["non_finite_steps"] == 3
    assert [s for s, c in changed.items() if not c] == [3, 4, 8]  # skipped: no weight moved
    counts = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "count"]
    assert [(r["name"], r["step"], r["total"]) for r in counts] == [
        ("non_finite_steps", 4, 1), ("non_finite_steps", 5, 2), ("non_finite_steps", 9, 3)]
    losses = [r["loss"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    assert losses and all(np.isfinite(losses))


def test_training_aborts_after_max_bad_steps_in_a_row(fake_data, tmp_path, monkeypatch, capsys):
    inject_losses(monkeypatch, from_step=5)
    code = main(["train", "--config", "tiny", "--data", str(fake_data), "--locales", "de,zh-CN",
                 "--out", str(tmp_path / "run"), "--set", "train.max_bad_steps=3",
                 "--set", "train.valid_every=4"])
    err = capsys.readouterr().err
    assert code == 2
    assert "asr train: error: 3 non-finite losses in a row at step 8: lower train.lr" in err
    state = load_package(tmp_path / "run" / "train_state.safetensors")[1]
    assert state["step"] == 4  # the last good state stays, to resume from with other settings


def test_scattered_non_finite_losses_never_abort(fake_data, tmp_path, monkeypatch):
    nan = float("nan")
    inject_losses(monkeypatch, {2: nan, 3: nan, 5: nan, 6: nan, 8: nan, 9: nan})
    summary = train(fake_data, tmp_path / "run", "train.max_steps=12", "train.valid_every=12",
                    "train.max_bad_steps=3")
    assert summary["steps"] == 12 and summary["non_finite_steps"] == 6


def test_non_finite_count_survives_a_resume(fake_data, tmp_path, monkeypatch):
    inject_losses(monkeypatch, {3: float("nan"), 14: float("nan")})
    cfg = load_run_config("tiny", [*TRAIN_SET, "train.max_steps=20"])
    Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "run", progress=False).fit(stop_at=16)  # "crash"
    summary = Trainer.from_data(cfg, fake_data, LOCALES, tmp_path / "run", resume=True, progress=False).fit()
    assert summary["non_finite_steps"] == 2  # step 3 kept, step 14 done again after step 10


# ---- a full disk ----------------------------------------------------------------------------

def test_full_disk_while_writing_features(fake_data, tmp_path, capsys):
    data, ref = tmp_path / "data", tmp_path / "reference"
    argv = ["prepare", "--cv-root", str(fake_data.parent / "cv"), "--locales", "de,zh-CN",
            "--workers", "1", "--vocab-size", "32"]
    limited = subprocess.run([*ASR, *argv, "--out", str(data)], capture_output=True, text=True,
                             preexec_fn=file_size_limit(100_000))  # a train shard is ~270 kB
    shard = data / "de" / "feats" / "train" / "shard-00000.f16"
    assert limited.returncode == 2, limited.stderr[-2000:]
    assert f"File too large (disk full or file-size limit reached; the previous file is " \
           f"unchanged): '{shard}'" in limited.stderr and "Traceback" not in limited.stderr
    assert not temporaries(data) and not (shard.parent / "index.json").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tokenizer vocabulary clamped on a toy corpus
        for out in (data, ref):  # room again: the rerun ends as an uninterrupted run does
            assert main([*argv, "--out", str(out)]) == 0
    capsys.readouterr()
    assert_same_data(data, ref)


def test_full_disk_while_writing_a_checkpoint(fake_data, reference_run, tmp_path):
    from asr import load_model

    run = tmp_path / "run"
    Trainer.from_data(load_run_config("tiny", TRAIN_SET), fake_data, LOCALES, run,
            progress=False).fit(stop_at=15)  # state, checkpoint and model of step 10
    argv = [*ASR, "train", "--config", "tiny", *[x for s in TRAIN_SET for x in ("--set", s)],
            "--data", fake_data, "--locales", ",".join(LOCALES), "--out", run, "--resume",
            "--threads", "1"]
    limited = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                             preexec_fn=file_size_limit(300_000))  # a checkpoint is ~620 kB
    target = run / "checkpoints" / "step0000020.safetensors"
    assert limited.returncode == 2, limited.stderr[-2000:]
    assert f"disk full or file-size limit reached; the previous file is unchanged): '{target}'" \
        in limited.stderr and "Traceback" not in limited.stderr
    assert not temporaries(run) and not target.exists()
    # what step 10 left still loads: the model, its checkpoint and the state to resume from
    assert load_model(run).languages == LOCALES
    load_package(run / "checkpoints" / "step0000010.safetensors")
    assert load_package(run / "train_state.safetensors")[1]["step"] == 10
    train(fake_data, run)  # room again: the resumed run ends as if nothing had happened
    assert_same_run(run, reference_run)


# ---- a damaged feature cache ----------------------------------------------------------------

def _flip_bit(shard: Path) -> None:
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x04
    shard.write_bytes(bytes(data))


CACHE_DAMAGE = {  # name -> (damage data/de/feats/train, words of the error)
    "bit_flip": (lambda d: _flip_bit(d / "shard-00000.f16"), "checksum mismatch, the shard is damaged"),
    "cut_shard": (lambda d: (d / "shard-00000.f16").write_bytes((d / "shard-00000.f16").read_bytes()[:-6]),
                  "missing or not 272640 bytes"),
    "lost_shard": (lambda d: (d / "shard-00000.f16").unlink(), "missing or not 272640 bytes"),
    "garbled_index": (lambda d: (d / "index.json").write_text('{"format": 1, "shards": [{"fi'),
                      "unreadable or malformed cache index"),
}


@pytest.mark.parametrize("case", sorted(CACHE_DAMAGE))
def test_damaged_cache_is_found_and_rebuilt(fake_data, tmp_path, capsys, case):
    from asr.prepare import prepare_data

    data = tmp_path / "data"
    shutil.copytree(fake_data, data)
    feats = data / "de" / "feats" / "train"
    damage, words = CACHE_DAMAGE[case]
    damage(feats)
    argv = ["train", "--config", "tiny", "--data", str(data), "--locales", "de",
            "--out", str(tmp_path / "run"), "--set", "train.max_steps=2", "--set", "train.valid_every=2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and str(feats) in err and "asr prepare" in err
    untouched = {p: p.stat().st_mtime_ns for p in (data / "de" / "feats").rglob("*.f16")
                 if p.parent.name != "train"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_data(data, ["de"], vocab_size=32, workers=1, progress=False)
    ref = fake_data / "de" / "feats" / "train" / "shard-00000.f16"
    assert (feats / "shard-00000.f16").read_bytes() == ref.read_bytes()
    assert all(p.stat().st_mtime_ns == t for p, t in untouched.items())  # only the damage redone
    shutil.rmtree(tmp_path / "run", ignore_errors=True)  # a run stopped at its first batch
    assert main(argv) == 0


# ---- kill -9 at random moments (slow) -------------------------------------------------------

@pytest.mark.slow
def test_kill_during_synthesis(tmp_path):
    from data_prep.synth import synthesize_corpus

    args = dict(locales=["de", "zh-CN"], hours={"de": 0.01, "zh-CN": 0.01}, eval_hours=0.003, seed=3)
    synthesize_corpus(tmp_path / "reference", progress=False, **args)
    out, rng = tmp_path / "corpus", random.Random(1)
    argv = [*ASR, "synth", "--out", out, "--locales", "de,zh-CN", "--hours", "de=0.01,zh-CN=0.01",
            "--eval-hours", "0.003", "--seed", "3", "--workers", "2"]
    for n in sorted(rng.sample(range(1, 40), 3)):  # clips on disk before the kill comes
        ready = lambda n=n: len(list(out.glob("*/clips/[!.]*.mp3"))) >= n  # noqa: E731
        assert run_and_kill(argv, ready, rng.uniform(0, 0.3), tmp_path / "log") is None
    assert subprocess.run([str(a) for a in argv], capture_output=True).returncode == 0
    assert not temporaries(out)
    files = sorted(p.relative_to(tmp_path / "reference") for p in (tmp_path / "reference").rglob("*")
                   if p.is_file() and p.name != ".synth.done")
    assert files == sorted(p.relative_to(out) for p in out.rglob("*")
                           if p.is_file() and p.name != ".synth.done")
    for rel in files:
        assert (out / rel).read_bytes() == (tmp_path / "reference" / rel).read_bytes(), rel
    done = json.loads((out / ".synth.done").read_text())
    assert done["params"] == json.loads((tmp_path / "reference" / ".synth.done").read_text())["params"]


@pytest.fixture(scope="module")
def big_release(tmp_path_factory) -> Path:
    """Two locales of 60 + 10 + 10 clips of 1-2 s: feature caching takes seconds, not moments."""
    root = tmp_path_factory.mktemp("big") / "cv"
    for locale in LOCALES:
        make_release(root, locale, train=60, dev=10, test=10, speakers=(8, 2, 2),
                     seconds=[1.0, 1.5, 2.0])
    return root


@pytest.mark.slow
def test_kill_during_feature_caching(big_release, tmp_path, capsys):
    data, ref, rng = tmp_path / "data", tmp_path / "reference", random.Random(2)
    argv = ["prepare", "--cv-root", str(big_release), "--locales", "de,zh-CN", "--workers", "2",
            "--vocab-size", "32"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*argv, "--out", str(ref)]) == 0
    capsys.readouterr()
    for _ in range(3):
        ready = lambda: any(data.glob("*/feats/*/.shard-*.tmp"))  # noqa: E731  (a shard in the making)
        assert run_and_kill([*ASR, *argv, "--out", data], ready, rng.uniform(0, 1.0),
                            tmp_path / "log") is None
    assert subprocess.run([*ASR, *argv, "--out", str(data)], capture_output=True).returncode == 0
    assert not temporaries(data)
    assert_same_data(data, ref)


@pytest.mark.slow
def test_kill_during_training_at_random_steps(fake_data, reference_run, tmp_path):
    run, rng = tmp_path / "run", random.Random(3)
    argv = [*ASR, "train", "--config", "tiny", *[x for s in TRAIN_SET for x in ("--set", s)],
            "--data", fake_data, "--locales", ",".join(LOCALES), "--out", run, "--threads", "1"]
    for step in sorted(rng.sample(range(1, 34), 4)):
        resume = ["--resume"] if (run / "train_state.safetensors").exists() else []
        assert run_and_kill([*argv, *resume], lambda s=step: logged_step(run) >= s,
                            rng.uniform(0, 0.3), tmp_path / "log") is None, step
    train(fake_data, run)
    assert_same_run(run, reference_run)


def die_while_writing(target: str, data: str, out: str) -> None:
    """Train in this process and kill -9 it halfway through writing `target`'s bytes.

    Run by test_kill_while_writing in a subprocess, as
    `python -c "from test_faults import die_while_writing; die_while_writing(...)"`."""
    from asr import checkpoint, fileio, runlog
    from asr import train as train_module

    torch.set_num_threads(1)

    def half_then_die(path, data: bytes) -> None:
        with fileio.atomic_write(path, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def at(step: int) -> bool:
        return trainer.step == step

    if target in ("checkpoint", "train_state"):
        real_write = checkpoint.write_bytes
        name = {"checkpoint": "step0000020.safetensors", "train_state": "train_state.safetensors"}

        def write_bytes(path, data):
            hit = Path(path).name == name[target] and at(20)
            (half_then_die if hit else real_write)(path, data)

        checkpoint.write_bytes = write_bytes
    elif target == "best_model":
        real_copy = train_module.copy_file

        def copy_file(src, dst):
            # the first validation always improves on nothing: its copy is certain to happen
            (half_then_die(dst, Path(src).read_bytes()) if at(10) else real_copy(src, dst))

        train_module.copy_file = copy_file
    elif target == "metrics_line":
        real_line = runlog.RunLog._write

        def _write(self, row):
            if row.get("step") == 26:
                self._file.write(json.dumps(row)[:25])
                self._file.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            real_line(self, row)

        runlog.RunLog._write = _write
    else:  # the summary.json a finished run writes last
        real_json = train_module.write_json

        def write_json(path, obj):
            hit = Path(path).name == "summary.json"
            (half_then_die(path, json.dumps(obj).encode()) if hit else real_json(path, obj))

        train_module.write_json = write_json
    trainer = Trainer.from_data(load_run_config("tiny", TRAIN_SET), data, LOCALES, out, progress=False)
    trainer.fit()
    sys.exit("the target was never written")


@pytest.mark.slow
@pytest.mark.parametrize("target", ["checkpoint", "best_model", "train_state", "metrics_line",
                                    "summary"])
def test_kill_while_writing(fake_data, reference_run, tmp_path, target):
    run = tmp_path / "run"
    code = f"from test_faults import die_while_writing; die_while_writing({target!r}, " \
           f"{str(fake_data)!r}, {str(run)!r})"
    died = subprocess.run([sys.executable, "-c", code], cwd=TESTS, capture_output=True, text=True)
    assert died.returncode == -signal.SIGKILL, died.stderr[-2000:]
    half = temporaries(run)
    assert len(half) == (target != "metrics_line"), half  # the write in flight, under a dot-name
    for path in run.rglob("*.safetensors"):  # every file under a final name is whole
        load_package(path)
    train(fake_data, run)
    assert_same_run(run, reference_run)


@pytest.mark.slow
def test_kill_during_experiment_sweep(big_release, tmp_path):
    from asr.experiment.study import load_experiment_config, run_experiment

    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({
        "name": "faults", "corpus": {"root": str(big_release), "vocab_size": 32, "workers": 2},
        "target": {"locale": "zh-CN", "hours": [0.01, 0.02]}, "helpers": {"locales": ["de"]},
        "grid": {"strategies": ["target_only", "finetune"], "seeds": [0]},
        "run": {"base": "tiny", "overrides": ["model.d_model=32", "data.batch_frames=2000"]},
        "budget": {"max_steps": 20, "valid_every": 5, "patience": 3}}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_experiment(load_experiment_config(config), tmp_path / "reference", device="cpu",
                       progress=False)
    out, rng = tmp_path / "sweep", random.Random(4)
    argv = [*ASR, "experiment", "--config", config, "--out", out, "--jobs", "2", "--threads", "1",
            "--no-progress", "--device", "cpu"]
    ends = []
    for _ in range(4):  # anywhere: data preparation, pretraining, two runs at once, scoring
        ready = lambda: (out / "experiment.yaml").exists()  # noqa: E731
        ends.append(run_and_kill(argv, ready, rng.uniform(0.5, 12.0), tmp_path / "log"))
    assert ends.count(None) >= 2 and set(ends) <= {None, 0}, ends  # killed, or already done
    assert subprocess.run([str(a) for a in argv], capture_output=True).returncode == 0
    assert not temporaries(out)
    ref_runs = sorted((tmp_path / "reference" / "runs").iterdir())
    assert [p.name for p in ref_runs] == sorted(p.name for p in (out / "runs").iterdir())
    for ref in ref_runs:
        run = out / "runs" / ref.name
        assert sorted(p.name for p in run.iterdir() if p.name != "train.log") == \
            sorted(p.name for p in ref.iterdir())
        assert strip(json.loads((run / "result.json").read_text())) == \
            strip(json.loads((ref / "result.json").read_text()))
        tensors_equal(run / "model.safetensors", ref / "model.safetensors")
    for name in ("report.json", "data/facts.json"):
        assert strip(json.loads((out / name).read_text())) == \
            strip(json.loads((tmp_path / "reference" / name).read_text())), name
    # the two narrowest windows, by hand: a kill between a run's summary.json and timing.json
    # (it is scored, not retrained), and one between result.json and the tidying after it
    scored, tidied = ref_runs[0], ref_runs[1]
    before = strip(json.loads((scored / "result.json").read_text()))
    (scored / "timing.json").unlink()
    (scored / "result.json").unlink()
    (tidied / "checkpoints").mkdir()
    shutil.copyfile(tidied / "model.safetensors", tidied / "train_state.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_experiment(load_experiment_config(config), tmp_path / "reference", device="cpu",
                       progress=False)
    assert strip(json.loads((scored / "result.json").read_text())) == before
    assert not (tidied / "checkpoints").exists() and not (tidied / "train_state.safetensors").exists()
