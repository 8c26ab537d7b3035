"""The transfer experiment: Mandarin CER against hours of Mandarin, with and without helpers.

One YAML (asr/configs/experiments/*.yaml, plain values) names the corpus, the target language
and its grid of training hours, the helper languages, the strategies, the seeds (hours and
seeds can be narrowed or extended per strategy), the run config and one training-budget
rule. `run_experiment` then

    1. synthesises the corpus if the config says how and it is missing;
    2. prepares data once: the helpers (manifests, tokenizers, features), the target's pool
       (its fixed dev and test sets), and per (seed, hours) point a nested, seeded subset of
       the target's training pool with its own tokenizer and features; helpers are linked in;
    3. trains every run of the grid into runs/<strategy>-h<hours>-s<seed>-<key>/, where the
       key hashes everything that determines the run, so a rerun skips finished runs, resumes
       interrupted ones and never reuses a result made under another config;
    4. scores each run's test sets and writes the report (asr/report.py).

Strategies (rows of the results):
    target_only            the target language alone
    joint                  helpers + target in one model, languages drawn p ∝ hours^alpha
    joint_shuffled         as joint, with the helpers' transcripts shuffled among utterances
                           of similar length: same audio, broken supervision (a control that
                           separates transfer from mere regularisation)
    finetune               the helpers' model (trained once per seed) fine-tuned on the target
                           with a new head (Trainer init=)
    progressive            the helpers' model as a frozen column, a new column for the target
                           with lateral adapters (Trainer base=)
    progressive_copy       as progressive, the new column starting as a copy of the helpers'
                           column rather than at random (progressive.init=copy)
    progressive_nolateral  as progressive without laterals (progressive.adapter_blocks=[])

Runs are independent processes when `jobs` > 1 (one thread each by default): on a CPU
machine two one-thread runs finish sooner than one two-thread run, and a run waits only for
the helpers' model it starts from. Data layout and preparation: asr/experiment_data.py;
executing the runs: asr/experiment_runs.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from importlib import metadata
from pathlib import Path

from asr.config import (
    CONFIG_DIR,
    ConfigError,
    RunConfig,
    apply_overrides,
    from_dict,
    load_run_config,
    load_yaml,
    run_config_to_dict,
    to_dict,
)
from asr.experiment_data import data_digest, point_dir, prepare_experiment_data
from asr.fileio import write_text

EXPERIMENT_DIR = CONFIG_DIR / "experiments"
EXPERIMENT_FORMAT = 2  # bump when a code change changes what a run computes (2: dropout placement)
STRATEGIES = ("target_only", "joint", "joint_shuffled", "finetune", "progressive",
              "progressive_copy", "progressive_nolateral")
NEEDS_HELPER_MODEL = ("finetune", "progressive", "progressive_copy", "progressive_nolateral")
STRATEGY_SETTINGS = {"progressive_copy": ("progressive.init=copy",),  # run-config overrides
                     "progressive_nolateral": ("progressive.adapter_blocks=[]",)}
CODE_PACKAGES = ("polyglot-asr", "torch", "numpy", "sentencepiece", "jiwer")  # in every run key


# ---- the config ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SynthSpec:
    """How to synthesise the corpus when it is missing (data_prep.synth.synthesize_corpus)."""

    hours: dict[str, float]  # train hours per locale (the target's pool must cover the grid)
    eval_hours: float = 0.05  # dev and test hours each, per locale
    seed: int = 0
    zh_inventory_size: int = 300
    workers: int = 2


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    root: str  # Common Voice release root (real or synthetic), relative to the working directory
    synth: SynthSpec | None = None  # None: a real release, never synthesised
    train_source: typing.Literal["train", "validated"] = "train"
    units: typing.Literal["char", "unigram", "bpe"] = "char"  # output units of alphabetic languages
    vocab_size: int = 256  # subword vocabulary of the helper languages (units unigram or bpe)
    zh_units: typing.Literal["char", "pinyin"] = "char"
    workers: int = 2  # feature-extraction processes


@dataclasses.dataclass(frozen=True)
class TargetSpec:
    hours: tuple[float, ...]  # the grid of training hours
    locale: str = "zh-CN"
    min_test_utterances: int = 0  # refuse to run on a smaller test set


@dataclasses.dataclass(frozen=True)
class HelperSpec:
    locales: tuple[str, ...]
    hours: float | None = None  # per helper language; None: the whole training pool
    seed: int = 0  # seed of the helpers' subsets (fixed across the grid's seeds)


@dataclasses.dataclass(frozen=True)
class StrategyGrid:
    """One strategy's own target hours and/or seeds, in place of the grid's, and run-config
    overrides of its own (`section.key=value`, after run.overrides)."""

    hours: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None
    overrides: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class GridSpec:
    strategies: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    # e.g. the costly joint runs at the smallest hours only, or target_only extended past the
    # largest point so that every ratio is interpolated on its curve rather than bounded
    per_strategy: dict[str, StrategyGrid] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        bad = [s for s in self.strategies if s not in STRATEGIES]
        if bad:
            raise ValueError(f"unknown strategy {bad[0]!r}; known: {', '.join(STRATEGIES)}")
        stray = sorted(set(self.per_strategy) - set(self.strategies))
        if stray:
            raise ValueError(f"per_strategy names {stray[0]!r}, which is not in strategies")
        for s, g in self.per_strategy.items():
            if (g.hours is not None and (not g.hours or min(g.hours) <= 0)) or g.seeds == ():
                raise ValueError(f"per_strategy.{s}: give at least one positive hours value "
                                 "and one seed")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    base: str = "default"  # shipped run config name or a YAML path
    overrides: tuple[str, ...] = ()  # `section.key=value` strings, as `asr train --set`


@dataclasses.dataclass(frozen=True)
class BudgetSpec:
    """The one training-budget rule every run follows (the helpers' pretraining included)."""

    max_steps: int  # cap on optimizer updates
    valid_every: int  # updates between validations on the dev set
    patience: int  # validations without improvement of the selection metric before stopping
    min_steps: int = 0  # updates before early stopping may act (CTC's initial blank plateau)
    # True: max_steps, valid_every and min_steps count updates per language trained, so a run
    # on L languages (the helpers' pretraining, joint runs) gets L times as many, and each
    # language's head gets about as many updates as the target's head in a target-only run.
    per_language: bool = False

    def __post_init__(self):
        if min(self.max_steps, self.valid_every, self.patience) < 1:
            raise ValueError("budget.max_steps, valid_every and patience must be >= 1")
        if not 0 <= self.min_steps <= self.max_steps:
            raise ValueError("budget.min_steps must lie between 0 and budget.max_steps")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    name: str
    corpus: CorpusSpec
    target: TargetSpec
    helpers: HelperSpec
    grid: GridSpec
    budget: BudgetSpec
    run: RunSpec = dataclasses.field(default_factory=RunSpec)

    def hours_for(self, strategy: str) -> tuple[float, ...]:
        g = self.grid.per_strategy.get(strategy)
        return g.hours if g and g.hours is not None else self.target.hours

    def seeds_for(self, strategy: str) -> tuple[int, ...]:
        g = self.grid.per_strategy.get(strategy)
        return g.seeds if g and g.seeds is not None else self.grid.seeds

    def points(self, strategies: tuple[str, ...] | None = None) -> list[tuple[int, float]]:
        """The (seed, target hours) points that these strategies (default: all) train on."""
        return sorted({(seed, h) for s in (strategies or self.grid.strategies)
                       for seed in self.seeds_for(s) for h in self.hours_for(s)})


def experiment_path(name: str | Path) -> Path:
    """A YAML path, or the name of a shipped experiment (asr/configs/experiments/<name>.yaml)."""
    p = Path(name)
    if p.exists():
        return p
    if not p.suffix and (EXPERIMENT_DIR / f"{p}.yaml").exists():
        return EXPERIMENT_DIR / f"{p}.yaml"
    shipped = ", ".join(sorted(x.stem for x in EXPERIMENT_DIR.glob("*.yaml")))
    raise ConfigError(f"{name}: no such experiment config (shipped: {shipped})")


def load_experiment_config(name: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """Load an experiment YAML, apply `section.key=value` overrides, check the run config too."""
    data = apply_overrides(load_yaml(experiment_path(name)), list(overrides))
    exp = from_dict(ExperimentConfig, data)
    if exp.target.locale in exp.helpers.locales:
        raise ConfigError(f"target {exp.target.locale} is also a helper language")
    if not exp.target.hours or min(exp.target.hours) <= 0:
        raise ConfigError("target.hours: give at least one positive number of hours")
    for strategy in ("pretrain", *exp.grid.strategies):  # a bad run config fails now, not
        run_config(exp, strategy, 0)                      # after data preparation
    return exp


def run_config(exp: ExperimentConfig, strategy: str, seed: int) -> RunConfig:
    """The run config of one run: base + overrides + seed + the budget rule."""
    b = exp.budget
    metric = "mean_cer" if strategy == "pretrain" else f"{exp.target.locale}_cer"
    helpers = len(exp.helpers.locales)
    languages = {"pretrain": helpers, "joint": helpers + 1, "joint_shuffled": helpers + 1}
    k = languages.get(strategy, 1) if b.per_language else 1
    overrides = [*exp.run.overrides, f"train.seed={seed}", f"train.max_steps={k * b.max_steps}",
                 f"train.valid_every={k * b.valid_every}", f"train.patience={b.patience}",
                 f"train.min_steps={k * b.min_steps}",
                 f"train.select_metric={metric}"]
    overrides += STRATEGY_SETTINGS.get(strategy, ())
    if strategy in exp.grid.per_strategy:
        overrides += exp.grid.per_strategy[strategy].overrides
    return load_run_config(exp.run.base, overrides)


def budget_rule(exp: ExperimentConfig) -> str:
    b = exp.budget
    per = " per language trained" if b.per_language else ""
    least = f"at least {b.min_steps} updates{per} and then " if b.min_steps else ""
    scaled = (" Counts are per language: a run on L languages (the helpers' pretraining, joint "
              "runs) gets L times as many updates, so with uniform language sampling "
              "(data.alpha=0) every language's output head gets about as many updates as the "
              "Mandarin head of a target-only run."
              if b.per_language else "")
    return (f"Every run, the helpers' pretraining included, trains {least}until its selection "
            f"metric ({exp.target.locale} dev CER, on speakers absent from training; the helpers' "
            f"mean dev CER for the pretraining) has not improved for {b.patience} validations "
            f"{b.valid_every} updates{per} apart, or until {b.max_steps} updates{per}, whichever "
            "comes first, with the same learning-rate schedule; the best validated checkpoint (or "
            "the average of the last ones, if better on dev) is scored." + scaled + " Why this "
            "is fair: each strategy trains for as long as it still improves on the same held-out "
            "dev set, checked equally often, so none is cut short by a budget tuned to another, "
            "and the cap is one number for all." + _own_settings(exp))


def _own_settings(exp: ExperimentConfig) -> str:
    own = [f"{s}: {', '.join(g.overrides)}" for s, g in exp.grid.per_strategy.items() if g.overrides]
    return f" Strategy-specific settings: {'; '.join(own)}." if own else ""


def code_versions() -> dict[str, str]:
    out = {}
    for name in CODE_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def package_versions() -> list[str]:
    """Every installed distribution as `name==version`, sorted (a pip freeze without pip)."""
    seen = {}
    for d in metadata.distributions():
        name = d.metadata["Name"]
        if name:
            seen[name.lower()] = f"{name}=={d.version}"
    return [seen[k] for k in sorted(seen)]


# ---- runs ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Job:
    """One training run of the grid (or the helpers' pretraining for a seed)."""

    strategy: str  # one of STRATEGIES, or "pretrain"
    seed: int
    hours: float | None
    cfg: RunConfig
    data_dir: Path
    locales: list[str]  # languages it trains on
    eval_locales: list[str]  # languages whose test sets it is scored on
    pretrain: Job | None = None  # the helpers' model it starts from
    key: str = ""
    run_dir: Path = Path()

    @property
    def label(self) -> str:
        if self.strategy == "pretrain":
            return f"pretrain helpers seed {self.seed}"
        return f"{self.strategy} {self.hours:g} h seed {self.seed}"


def plan_jobs(exp: ExperimentConfig, root: Path) -> list[Job]:
    """Every run of the grid, keyed by everything that determines it, pretraining first."""
    tgt, helpers = exp.target.locale, list(exp.helpers.locales)
    data, versions = root / "data", code_versions()
    jobs, pretrains = [], {}

    def keyed(job: Job) -> Job:
        material = {"format": EXPERIMENT_FORMAT, "strategy": job.strategy, "seed": job.seed,
                    "hours": job.hours, "locales": job.locales, "config": run_config_to_dict(job.cfg),
                    "data": data_digest(job.data_dir, sorted(set(job.locales + job.eval_locales))),
                    "pretrain": job.pretrain.key if job.pretrain else None, "versions": versions}
        job.key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:12]
        name = "pretrain" if job.hours is None else f"{job.strategy}-h{job.hours:g}"
        job.run_dir = root / "runs" / f"{name}-s{job.seed}-{job.key}"
        return job

    others = tuple(s for s in exp.grid.strategies if s != "target_only")  # forgetting baseline
    for seed in sorted({seed for s in others for seed in exp.seeds_for(s)}):
        pretrains[seed] = keyed(Job("pretrain", seed, None, run_config(exp, "pretrain", seed),
                                    data / "helpers", helpers, helpers))
        jobs.append(pretrains[seed])
    for seed, h in exp.points():
        for s in exp.grid.strategies:
            if seed in exp.seeds_for(s) and h in exp.hours_for(s):
                point = point_dir(data, seed, h, shuffled=s == "joint_shuffled")
                locales = [*helpers, tgt] if s.startswith("joint") else [tgt]
                evals = [tgt] if s == "target_only" else [tgt, *helpers]
                jobs.append(keyed(Job(s, seed, h, run_config(exp, s, seed), point, locales, evals,
                                      pretrains[seed] if s in NEEDS_HELPER_MODEL else None)))
    return jobs


def run_experiment(exp: ExperimentConfig, out_dir: str | Path | None = None, device: str = "auto",
                   progress: bool = True, report_only: bool = False, workers: int = 1,
                   threads: int = 0) -> dict:
    """Prepare, train every run not yet finished, score, and write the report; returns it.

    workers > 1 trains that many runs at once in separate processes with `threads` torch
    threads each (0: the CPU count shared out among them).
    """
    from asr.experiment_runs import finished_result, run_jobs
    from asr.report import write_report

    root = Path(out_dir or Path("exp") / exp.name)
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / "experiment.yaml", _yaml(to_dict(exp)))
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


def _yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
