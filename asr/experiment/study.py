"""The whole study in two calls: `load_experiment_config` and `run_experiment` (what
`asr experiment` runs); see the package docstring for the steps.
"""


from __future__ import annotations

from pathlib import Path

import yaml

from asr.config import ConfigError, to_dict
from asr.experiment.config import ExperimentConfig, read_experiment_config
from asr.experiment.data import facts_path, prepare_experiment_data
from asr.experiment.ledger import Ledger, describe
from asr.experiment.plan import (
    budget_rule,
    check_starts,
    needs_pretrain,
    package_versions,
    plan_fingerprint,
    plan_jobs,
    run_config,
    run_kinds,
)
from asr.experiment.report import write_report
from asr.experiment.runs import finished_result, last_step, run_jobs
from asr.experiment.strategies import STRATEGIES
from asr.fileio import write_text
from asr.run_lock import FolderLock


def load_experiment_config(name: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Load an experiment YAML, apply `section.key=value` overrides, and check every run config
    it implies now rather than after data preparation."""
    exp = read_experiment_config(name, overrides)
    if needs_pretrain(exp) and not exp.helpers.locales:
        helped = [s for s in exp.grid.strategies if STRATEGIES[s].scored_on_helpers]
        raise ConfigError(f"grid.strategies: {', '.join(helped)} need helper languages, and "
                          "helpers.locales is empty")
    check_starts(exp)
    identity = {}
    for s in run_kinds(exp):
        for layout in exp.layouts_for(s) if s in exp.grid.strategies else (None,):
            try:
                identity[s] = run_config(exp, s, 0, layout).features.identity()
            except ValueError as e:
                raise ConfigError(f"{s}: {e}") from None
    first = run_kinds(exp)[0]
    odd = [s for s in identity if identity[s] != identity[first]]
    if odd:  # the features are computed once for every run (SpecAugment may differ)
        raise ConfigError(f"{odd[0]}: its overrides change the feature settings "
                          f"({identity[odd[0]]} instead of {identity[first]}), but an "
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
    with FolderLock(root, "experiment folder"):  # one `asr experiment` per folder at a time
        return _run(exp, root, device, progress, report_only, workers, threads)


def _ledger(exp: ExperimentConfig) -> Ledger | None:
    return Ledger(exp.ledger, shared_from=exp.ledgers_from) if exp.ledger else None


def _prepare(exp: ExperimentConfig, root: Path) -> dict:
    """The experiment's data prepared (once for every run: the first run kind's features);
    its facts."""
    return prepare_experiment_data(exp, root, run_config(exp, run_kinds(exp)[0], 0).features)


def plan_status(exp: ExperimentConfig, out_dir: str | Path | None = None) -> list[dict]:
    """Every planned run and where it stands, printed one line each and returned; trains
    nothing and writes no report. It takes no lock, so it can look at a folder whose sweep is
    training (it prepares the data if needed, which a running sweep has already done)."""
    root = Path(out_dir or Path("exp") / exp.name)
    ledger = _ledger(exp)
    _prepare(exp, root)
    jobs = plan_jobs(exp, root)
    rows = []
    for k, job in enumerate(jobs, 1):
        carried = ledger.carried_dir(job.key, job.run_dir) if ledger is not None else None
        src = ledger.source_of(job.key) if ledger is not None else None
        if ledger is not None and (r := ledger.get(job.key)) is not None:
            kind, detail = "in the ledger", f"trained on {r.machine}"
        elif src is not None:
            kind, detail = "in another ledger", f"{src.path}, trained on {src.get(job.key).machine}"
        elif finished_result(job) is not None:
            kind, detail = "finished here, not in the ledger", str(job.run_dir)
        elif (step := last_step(job.run_dir)) is not None:
            kind, detail = "unfinished here", f"at update {step}: {job.run_dir}"
        elif carried is not None and (step := last_step(carried)) is not None:
            kind, detail = "unfinished, state carried", f"at update {step}: {carried}"
        else:
            kind, detail = "to train", ""
        state = f"{kind} ({detail})" if detail else kind
        rows.append({"label": job.label, "key": job.key, "run_dir": str(job.run_dir),
                     "kind": kind, "state": state})
        print(f"[{k}/{len(jobs)}] {job.label} ({job.key}): {state}", flush=True)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
    print(f"{len(rows)} planned: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()),
          flush=True)
    return rows


def _run(exp: ExperimentConfig, root: Path, device: str, progress: bool, report_only: bool,
         workers: int, threads: int) -> dict:
    write_text(root / "experiment.yaml", yaml.safe_dump(to_dict(exp), sort_keys=False,
                                                         allow_unicode=True))
    write_text(root / "versions.txt", "\n".join(package_versions()) + "\n")
    # before data preparation, which takes long: a missing ledger in ledgers_from fails now
    ledger = _ledger(exp)
    saved = (ledger.saved_plan(plan_fingerprint(exp))
             if report_only and ledger is not None and not facts_path(root).exists() else None)
    if saved is not None:  # a clone without the data: the plan saved with the ledger
        keys, facts = saved
        results = [r for k in keys if (r := ledger.get(k)) is not None]
        print(f"{len(results)} of {len(keys)} runs in {ledger.path}; reporting those (the keys "
              f"and data facts of {ledger.plan_path}, saved under this config and code)",
              flush=True)
        return _report(exp, root, results, facts, ledger)
    facts = _prepare(exp, root)
    jobs = plan_jobs(exp, root)
    for line in ledger.take_shared(jobs) if ledger is not None else ():
        print(line, flush=True)
    if report_only:
        results = [r for j in jobs if (r := finished_result(j) or (
            ledger.get(j.key) if ledger else None)) is not None]
        print(f"{len(results)} of {len(jobs)} runs finished; reporting those", flush=True)
        if ledger is not None:
            ledger.save_plan(plan_fingerprint(exp), [j.key for j in jobs], facts)
    else:
        results = run_jobs(jobs, facts, exp.target.locale, device=device, progress=progress,
                           workers=workers, threads=threads, ledger=ledger)
    return _report(exp, root, results, facts, ledger)


def _report(exp: ExperimentConfig, root: Path, results: list, facts: dict,
            ledger: Ledger | None) -> dict:
    if ledger is not None:
        print(describe(ledger), flush=True)
    report = write_report(exp, root, results, facts, budget_rule(exp))
    print(f"\nreport: {root / 'results.md'}\nplot:   {root / 'cer_vs_hours.png'}", flush=True)
    return report
