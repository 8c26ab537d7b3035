"""What a run leaves for programs and for curves: metrics.jsonl and TensorBoard events."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from asr.fileio import to_json_line, write_json, write_jsonl


class RunLog:
    """Appends one JSON line per event to metrics.jsonl and mirrors scalars to TensorBoard."""

    def __init__(self, out_dir: str | Path, enabled: bool = True):
        self.out = Path(out_dir)
        self.enabled = enabled
        self.counts: Counter = Counter()
        self._tb = None
        self._file = None

    def start(self, config: dict, description: dict, resume_step: int | None = None) -> None:
        """Open the logs; on resume, drop rows a killed run logged after its last checkpoint."""
        if not self.enabled:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        metrics = self.out / "metrics.jsonl"
        if metrics.exists():
            kept = [row for row in read_jsonl_lenient(metrics)
                    if resume_step is not None and row.get("step", 0) <= resume_step]
            write_jsonl(metrics, kept)
            # counts go on from the checkpoint: steps after it are done again, so counted again
            self.counts = Counter({row["name"]: row["total"] for row in kept
                                   if row.get("kind") == "count"})
        write_json(self.out / "config.json", config)
        write_json(self.out / "run.json", description)
        self._file = open(self.out / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out / "tensorboard"))
        except ImportError:  # tensorboard is a dependency, but a run never dies for a plot
            self._tb = None

    def _write(self, row: dict) -> None:
        if self._file is not None:
            self._file.write(to_json_line(row | {"time": time.time()}))
            self._file.flush()

    def train(self, step: int, row: dict) -> None:
        if not self.enabled:
            return
        self._write({"kind": "train", "step": step} | row)
        if self._tb:
            for k, v in row.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(f"train/{k}", v, step)

    def validation(self, step: int, scores: dict) -> None:
        if not self.enabled:
            return
        self._write({"kind": "valid", "step": step, "scores": scores})
        if self._tb:
            for loc, s in scores.items():
                for metric in ("cer", "wer"):
                    self._tb.add_scalar(f"valid_{metric}/{loc}", s[metric], step)

    def event(self, step: int, name: str, **fields) -> None:
        """A one-off event of training (a learning-rate decay, ...) with its values."""
        if self.enabled:
            self._write({"kind": "event", "step": step, "name": name} | fields)

    def count(self, name: str, step: int) -> None:
        """Count one event (a skipped step, ...) at `step`; the totals survive a resume."""
        self.counts[name] += 1
        if self.enabled:
            self._write({"kind": "count", "step": step, "name": name, "total": self.counts[name]})

    def close(self) -> None:
        if self._tb:
            self._tb.close()
        if self._file:
            self._file.close()
            self._file = None


def read_jsonl_lenient(path: Path) -> list[dict]:
    """Rows of a log that a kill may have cut mid-line: the broken last line is dropped."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
