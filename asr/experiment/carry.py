"""Carried state: what lets one run outlive the machine, and the session, that started it.

The ledger (ledger.py) carries finished runs' results, which is all the report needs. Two
things it cannot carry: a model that later runs start from (the helpers' pretraining, joint
runs), and a run too long for one session (a pretraining on four languages takes hours on
one core). Both live beside the ledger, committed with it:

    <ledger folder>/state/<run folder name>/
        model*.safetensors       finished: the models later runs start from;
                                 unfinished: its best models so far (model.safetensors, and
                                 with train.keep_schedule_best, model_schedule_best.safetensors)
        train_state.safetensors  unfinished only: model, optimizer, sampler, step (resume)
        metrics.jsonl            unfinished only: its validations so far (the dev curve)
        timing.json              unfinished only: its train seconds so far

An unfinished run mirrors its resume state here every CARRY_SECONDS, right after a
validation (runs.py); a sweep on another machine, or the next session, resumes from it
exactly where the mirror was taken (the updates since are trained again). When the run
finishes, its folder here keeps only its models, and only if a later run starts from one.
The run folder name holds the run key, so a state is never resumed under another config.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from asr.fileio import copy_file, write_json

CARRY_SECONDS = 600  # wall seconds between two mirrors of an unfinished run's resume state
RESUME_FILES = ("train_state.safetensors", "metrics.jsonl")  # and its models (_models)


def _models(folder: Path) -> list[str]:
    """The names of the model files in a run or carried folder: model.safetensors and any
    other best model the Trainer keeps beside it (model_<which>.safetensors)."""
    return sorted(p.name for p in folder.glob("model*.safetensors"))


def save_progress(run_dir: Path, carried: Path, timing: dict) -> bool:
    """Mirror an unfinished run's resume state into `carried`; False when it has none yet.
    Call it from the training thread (between updates), so no file changes while copied."""
    if not (run_dir / "train_state.safetensors").exists():
        return False
    carried.mkdir(parents=True, exist_ok=True)
    for name in (*RESUME_FILES, *_models(run_dir)):
        if (run_dir / name).exists():
            copy_file(run_dir / name, carried / name)
    # written last: a mirror cut short keeps the previous timing beside newer state, which
    # only undercounts the train seconds
    write_json(carried / "timing.json", timing)
    return True


def keep_model(run_dir: Path, carried: Path) -> None:
    """A finished run that later runs start from: keep its models alone."""
    carried.mkdir(parents=True, exist_ok=True)
    for name in _models(run_dir):
        copy_file(run_dir / name, carried / name)
    for name in (*RESUME_FILES, "timing.json"):
        (carried / name).unlink(missing_ok=True)


def drop(carried: Path) -> None:
    """A finished run nothing starts from: its carried state is no longer needed."""
    shutil.rmtree(carried, ignore_errors=True)


def restore(run_dir: Path, carried: Path) -> str | None:
    """Bring carried state into a run folder that lacks it: "resume" (an unfinished run's
    resume state, when the folder holds none of its own), "model" (a finished run's models
    that the folder lacks), or None (nothing to bring)."""
    if not carried.is_dir():
        return None
    if (carried / "train_state.safetensors").exists():
        if (run_dir / "train_state.safetensors").exists() or (run_dir / "summary.json").exists():
            return None  # this machine's own state is as new or newer
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in (*RESUME_FILES, *_models(carried), "timing.json"):
            if (carried / name).exists():
                copy_file(carried / name, run_dir / name)
        return "resume"
    missing = [name for name in _models(carried) if not (run_dir / name).exists()]
    if missing:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in missing:
            copy_file(carried / name, run_dir / name)
        return "model"
    return None


class Mirror:
    """The training thread's hook: after an update, when a new resume state was written and
    CARRY_SECONDS have passed since the last mirror, record the train seconds so far in the run
    folder's timing.json (a killed session's time is then kept, up to the last mirror) and,
    with `carried`, mirror the resume state there."""

    def __init__(self, run_dir: Path, carried: Path | None, timing: dict):
        """`timing`: the run's earlier sessions ({"train_seconds", "sessions"})."""
        self.run_dir, self.carried, self.every = run_dir, carried, CARRY_SECONDS
        self.timing, self.t0 = timing, time.perf_counter()
        self.last, self.mirrored_mtime = self.t0, None

    def __call__(self) -> None:
        now = time.perf_counter()
        if now - self.last < self.every:
            return
        state = self.run_dir / "train_state.safetensors"
        mtime = state.stat().st_mtime_ns if state.exists() else None
        if mtime is not None and mtime != self.mirrored_mtime:
            so_far = {"train_seconds": self.timing["train_seconds"] + now - self.t0,
                      "sessions": self.timing["sessions"] + 1}
            write_json(self.run_dir / "timing.json", so_far)
            if self.carried is not None:
                save_progress(self.run_dir, self.carried, so_far)
            self.mirrored_mtime, self.last = mtime, now
