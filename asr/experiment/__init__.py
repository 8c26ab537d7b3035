"""The transfer experiment: target-language CER against hours of target data, with and
without helper languages, one row per strategy (asr/experiment/strategies.py).

`run_experiment` (what `asr experiment` calls)

    1. synthesises the corpus if the config says how and it is missing;
    2. prepares data once (data.py): the helpers, the target's pool (its fixed dev and test
       sets), and per (seed, hours) point a nested, seeded subset of the target's pool with
       its own tokenizer and features;
    3. plans every run of the grid (plan.py) and trains the unfinished ones (runs.py),
       `workers` at a time in separate processes;
    4. scores each run's test sets and writes the report (report.py) from the runs' typed
       results (results.py).

Dependencies point one way: config, strategies → data → plan → runs → report → here. This
package is the recipe layer, the one part of `asr` below the CLI that may import data_prep.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from asr.config import ConfigError, to_dict
from asr.experiment.config import ExperimentConfig, experiment_path, read_experiment_config
from asr.experiment.data import prepare_experiment_data
from asr.experiment.plan import Job, budget_rule, package_versions, plan_jobs, run_config
from asr.experiment.report import write_report
from asr.experiment.runs import finished_result, run_jobs
from asr.experiment.strategies import NAMES, PRETRAIN, STRATEGIES, Strategy, strategy
from asr.fileio import write_text

__all__ = ["NAMES", "PRETRAIN", "STRATEGIES", "ExperimentConfig", "Job", "Strategy",
           "experiment_path", "load_experiment_config", "plan_jobs", "run_config",
           "run_experiment", "strategy"]


def load_experiment_config(name: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Load an experiment YAML, apply `section.key=value` overrides, and check every run config
    it implies now rather than after data preparation."""
    exp = read_experiment_config(name, overrides)
    identity = {}
    for s in (PRETRAIN, *exp.grid.strategies):
        try:
            identity[s] = run_config(exp, s, 0).features.identity()
        except ValueError as e:
            raise ConfigError(f"{s}: {e}") from None
    odd = [s for s in identity if identity[s] != identity[PRETRAIN]]
    if odd:  # the features are computed once for every run (SpecAugment may differ)
        raise ConfigError(f"{odd[0]}: its overrides change the feature settings "
                          f"({identity[odd[0]]} instead of {identity[PRETRAIN]}), but an "
                          "experiment's features are computed once for all its runs")
    return exp


def run_experiment(exp: ExperimentConfig, out_dir: str | Path | None = None, device: str = "auto",
                   progress: bool = True, report_only: bool = False, workers: int = 1,
                   threads: int = 0) -> dict:
    """Prepare, train every run not yet finished, score, and write the report; returns it.

    workers > 1 trains that many runs at once in separate processes with `threads` torch
    threads each (0: the CPU cores shared out among the runs training at the moment).
    """
    root = Path(out_dir or Path("exp") / exp.name)
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / "experiment.yaml", yaml.safe_dump(to_dict(exp), sort_keys=False,
                                                         allow_unicode=True))
    write_text(root / "versions.txt", "\n".join(package_versions()) + "\n")
    facts = prepare_experiment_data(exp, root, run_config(exp, "target_only", 0).features)
    jobs = plan_jobs(exp, root)
    if report_only:
        results = [r for j in jobs if (r := finished_result(j)) is not None]
        print(f"{len(results)} of {len(jobs)} runs finished; reporting those", flush=True)
    else:
        results = run_jobs(jobs, facts, exp.target.locale, device=device, progress=progress,
                           workers=workers, threads=threads)
    report = write_report(exp, root, results, facts, budget_rule(exp))
    print(f"\nreport: {root / 'results.md'}\nplot:   {root / 'cer_vs_hours.png'}", flush=True)
    return report
