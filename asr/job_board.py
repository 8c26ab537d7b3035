"""Live progress of an experiment's runs: one line per running run, redrawn in place.

The runs train in worker processes whose output goes to their train.log; the parent reads
each running run's metrics.jsonl (which the trainer flushes row by row), so no messages pass
between processes and a run's progress is exactly what it logged. On a terminal the board is
redrawn every few seconds under the permanent start/finish lines; elsewhere (a log file, a
CI job, --no-progress) only those permanent lines are printed.

    [5/7] finetune 0.1 h seed 0   step  250/400  dev zh-CN CER  54.3%   96 audio-s/s   1:23
    [6/7] finetune 0.3 h seed 0   step   50/400  dev zh-CN CER      -   88 audio-s/s   0:17
    ETA ~4 min at the measured speed (less if runs stop early)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REFRESH_SECONDS = 2.0
SPEED_ROWS = 10  # a run's speed is measured over its last this many logged rows


def run_status(run_dir: Path, select_metric: str) -> dict:
    """Last step, audio-s/s, updates per second and last dev value of a run's metrics.jsonl."""
    path = run_dir / "metrics.jsonl"
    status = {"step": 0, "aps": None, "updates_per_second": None, "dev": None}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return status
    trains = []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:  # a line being written
            continue
        if row.get("kind") == "train":
            trains.append(row)
        elif row.get("kind") == "valid":
            where, _, metric = select_metric.rpartition("_")
            value = row.get("scores", {}).get(where, {}).get(metric)
            status["dev"] = value if value is not None else status["dev"]
    if trains:
        last = trains[-1]
        status["step"], status["aps"] = last["step"], last.get("audio_seconds_per_second")
        first = trains[-min(len(trains), SPEED_ROWS)]  # recent rows: not across a resume's gap
        if last["time"] > first["time"]:
            status["updates_per_second"] = (last["step"] - first["step"]) / (last["time"] - first["time"])
    return status


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def eta_text(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class JobBoard:
    """Permanent lines (`say`) plus, on a terminal, live lines for the running runs (`draw`)."""

    def __init__(self, live: bool | None = None, stream=None):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self._drawn = 0  # lines of the board now on screen

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")  # up N lines, erase to the end
            self._drawn = 0

    def say(self, line: str) -> None:
        """A line that stays (a run started or finished)."""
        self._clear()
        print(line, file=self.stream, flush=True)

    def draw(self, rows: list[str]) -> None:
        """Replace the live lines with `rows` (nothing unless live)."""
        if not self.live:
            return
        self._clear()
        for row in rows:
            self.stream.write(row + "\n")
        self.stream.flush()
        self._drawn = len(rows)

    def done(self) -> None:
        self._clear()
        self.stream.flush()


def board_rows(running: list[tuple[str, int, Path, str, float]], waiting_steps: int,
               workers: int) -> list[str]:
    """Live lines for running runs (label, max_steps, run_dir, select_metric, start time) and
    an ETA: the updates left, capped runs assumed, at the speed measured so far."""
    rows, speeds, left = [], [], waiting_steps
    width = max((len(r[0]) for r in running), default=0)
    for label, max_steps, run_dir, metric, began in running:
        s = run_status(run_dir, metric)
        dev = f"{100 * s['dev']:5.1f}%" if s["dev"] is not None else "     -"
        aps = f"{s['aps']:5.0f}" if s["aps"] else "    -"
        rows.append(f"{label:<{width}}  step {s['step']:>5}/{max_steps:<5} dev "
                    f"{metric.replace('_', ' ').replace('cer', 'CER')} {dev} {aps} audio-s/s  "
                    f"{_clock(time.perf_counter() - began)}")
        left += max(0, max_steps - s["step"])
        if s["updates_per_second"]:
            speeds.append(s["updates_per_second"])
    if speeds:
        # runs still waiting will share the workers; the ones running now go at their speed
        rate = sum(speeds) / len(speeds) * workers if waiting_steps else sum(speeds)
        rows.append(f"ETA ~{eta_text(left / rate)} at the measured speed (less if runs stop "
                    "early)")
    return rows
