"""A finished run of the experiment, typed: what runs.py writes to result.json and the report
reads. Reading goes through asr.config.from_dict, so a missing or mistyped field is an error
naming it, never a KeyError deep in the report.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from asr.config import from_dict, to_dict
from asr.experiment.config import layout_name
from asr.fileio import write_json


@dataclasses.dataclass(frozen=True)
class Metric:
    rate: float  # errors per reference unit
    ci95: tuple[float, float]  # percentile bootstrap over test utterances


@dataclasses.dataclass(frozen=True)
class LocaleScores:
    """One language's test set scored by one run."""

    utterances: int
    # "cer" and "wer" always, plus the language's own, e.g. "ser" (toned pinyin) for zh-CN
    metrics: dict[str, Metric]
    # CER per utterance, aligned by id, for intervals pooled over seeds in the report
    ids: tuple[str, ...]
    errors: tuple[int, ...]
    units: tuple[int, ...]

    def rate(self, metric: str) -> float | None:
        m = self.metrics.get(metric)
        return None if m is None else m.rate


@dataclasses.dataclass(frozen=True)
class RunResult:
    key: str  # the run key of plan.py: the result belongs to exactly this config
    strategy: str  # a strategy name, or PRETRAIN
    seed: int
    hours: float | None  # target hours asked for; None for the helpers' pretraining
    actual_hours: float | None  # target hours the subset holds
    unseen_char_rate: float | None  # share of test characters never seen in training text
    test: dict[str, LocaleScores]  # per language scored
    parameters: int  # the recogniser's (a fine-tuned model's LID reference apart)
    trainable_parameters: int
    train_seconds: float  # wall time over all sessions of the run
    steps: int  # updates trained
    best_step: int
    stopped_early: bool  # False: stopped by the update cap
    max_steps: int  # the cap
    run_dir: str
    pretrain: str | None  # the run dir of the model it started from
    # (update, selection metric on dev) at every validation: how fast it learned
    dev_curve: tuple[tuple[int, float], ...]
    machine: str  # CPU model and cores, or GPU, it trained on (asr.device.machine_name)
    # [below, shared, above] of a sharing-depth sweep (plan.Job.layout); None: the run
    # config's own (every run recorded before layouts were a sweep dimension)
    layout: tuple[int, int, int] | None = None
    # of train_seconds, the language-ID fit at the end (0: one language, nothing to fit);
    # None: not recorded (runs recorded before the field)
    lid_fit_seconds: float | None = None
    # with train.keep_schedule_best: the test scores of its best on every language it trains
    # (model_schedule_best), the model a fine-tuning starts from; None: not kept
    schedule_test: dict[str, LocaleScores] | None = None

    @property
    def variant(self) -> str:
        """The strategy as the report names it: "joint", or "joint 0-3-1" in a layout sweep."""
        return self.strategy if self.layout is None else f"{self.strategy} {layout_name(self.layout)}"

    @property
    def hit_cap(self) -> bool:
        """Stopped by the update cap, not by early stopping: possibly not converged."""
        return not self.stopped_early

    def save(self, path: Path) -> None:
        write_json(path, to_dict(self))

    @classmethod
    def load(cls, path: Path) -> RunResult:
        return from_dict(cls, json.loads(Path(path).read_text()), prefix=f"{path}: ")
