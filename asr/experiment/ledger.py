"""The ledger: every finished run of an experiment, one JSON line each, committed to git.

A sweep too long for one session or one machine runs a chunk at a time. The run directories
(models, logs) stay on the machine that trained them; the ledger holds what the report needs
(asr/experiment/results.py RunResult: key, scores with per-utterance counts, steps, why it
stopped, the dev curve, train seconds, the machine) and travels with the code. A sweep skips
every run whose key is in the ledger, and the report is rebuilt from the ledger alone.

One line per run, sorted by (strategy, hours, seed, key), so a diff shows the runs added and
two machines' ledgers merge line by line. Written atomically by the one process that runs the
sweep (asr/experiment/runs.py), after each run finishes.

Two experiments can plan the same run: the same key means the same run config, data and code
(plan.py), e.g. sharing_depth's all-shared layout at transfer_full's points. An experiment
that names the other's ledger in `ledgers_from` takes such a run from it (`take_shared`), and
a model that its own runs start from is restored from the other's carried state (`carried_dir`).

Which of the recorded runs the report shows is the plan's business: the keys that this config
and code make (older keys stay in the file, unreported). Planning hashes the prepared data, so
`--report-only` also saves the plan beside the ledger (plan.json: the keys and the data facts,
under a fingerprint of the config and code); a later `--report-only` on a clone without the
prepared data reads it instead of synthesising and preparing the corpus again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from asr.config import from_dict, to_dict
from asr.experiment.results import RunResult
from asr.fileio import read_jsonl, write_json, write_jsonl
from asr.run_lock import FolderLock


class Ledger:
    """The finished runs of one experiment, keyed by run key."""

    def __init__(self, path: str | Path, shared_from=()):
        self.path = Path(path)
        self.runs: dict[str, RunResult] = self._read()
        missing = [str(p) for p in shared_from if not Path(p).exists()]
        if missing:
            raise FileNotFoundError(f"ledgers_from: {', '.join(missing)} not found")
        self.sources = [Ledger(p) for p in shared_from]  # read only

    def _read(self) -> dict[str, RunResult]:
        runs = {}
        if self.path.exists():
            for n, row in enumerate(read_jsonl(self.path), 1):
                run = from_dict(RunResult, row, prefix=f"{self.path} line {n}: ")
                runs[run.key] = run
        return runs

    @property
    def state_dir(self) -> Path:
        """Where runs' state outlives a machine (carry.py): models that later runs start
        from, and unfinished runs' resume state."""
        return self.path.parent / "state"

    def get(self, key: str) -> RunResult | None:
        return self.runs.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self.runs

    def __len__(self) -> int:
        return len(self.runs)

    def add(self, run: RunResult) -> None:
        """Record a finished run (replacing a record of the same key) and rewrite the file,
        merged with what other sweeps wrote to it meanwhile (one writer at a time)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FolderLock(self.path.parent, "ledger folder").acquire(wait=True):
            self.runs = self._read() | self.runs | {run.key: run}
            order = sorted(self.runs.values(),
                           key=lambda r: (r.strategy, -1.0 if r.hours is None else r.hours,
                                          r.seed, r.key))
            write_jsonl(self.path, [to_dict(r) for r in order])

    def source_of(self, key: str) -> Ledger | None:
        """The other experiment's ledger (`ledgers_from`) that holds this run, if one does."""
        return next((src for src in self.sources if key in src), None)

    def take_shared(self, jobs) -> list[str]:
        """Record here every planned run that another experiment's ledger holds and this one
        does not, with this experiment's layout for it; one line per run taken."""
        taken = []
        for job in jobs:
            if job.key not in self and (src := self.source_of(job.key)) is not None:
                self.add(dataclasses.replace(src.runs[job.key], layout=job.layout))
                taken.append(f"{job.label}: taken from {src.path} (the same run, trained "
                             f"there as {Path(src.runs[job.key].run_dir).name})")
        return taken

    def carried_dir(self, key: str, run_dir: Path) -> Path:
        """Where a run's state outlives the machine (carry.py): beside this ledger, or, for a
        run taken from another experiment, beside that one under the folder it trained in."""
        src = self.source_of(key)
        if src is not None:
            return src.state_dir / Path(src.runs[key].run_dir).name
        return self.state_dir / run_dir.name

    @property
    def plan_path(self) -> Path:
        return self.path.parent / "plan.json"

    def save_plan(self, fingerprint: str, keys: list[str], facts: dict) -> None:
        """Record what the report needs besides the runs: the planned keys, in plan order, and
        the data facts, valid for the config and code that `fingerprint` hashes."""
        write_json(self.plan_path, {"fingerprint": fingerprint, "keys": keys, "facts": facts})

    def saved_plan(self, fingerprint: str) -> tuple[list[str], dict] | None:
        """The saved keys and facts when they were planned under `fingerprint`, else None."""
        if not self.plan_path.exists():
            return None
        saved = json.loads(self.plan_path.read_text(encoding="utf-8"))
        if saved.get("fingerprint") != fingerprint:
            return None
        return list(saved["keys"]), saved["facts"]

    def stale(self, keys: set[str]) -> list[str]:
        """Keys recorded here that the current plan no longer makes (another config or code
        version): kept in the file, never reported."""
        return sorted(set(self.runs) - keys)


def describe(ledger: Ledger) -> str:
    """One line for people: how many runs, on which machines, how many CPU-hours."""
    machines = sorted({r.machine for r in ledger.runs.values()})
    seconds = sum(r.train_seconds for r in ledger.runs.values())
    return (f"{len(ledger)} runs in {ledger.path} ({seconds / 3600:.1f} h of training, on "
            f"{'; '.join(machines) or 'no machine yet'})")

