"""Planning the transfer experiment: every run of the grid as a Job, with its run config, its
data directory and a key that hashes everything that determines it.

A run lives in runs/<strategy>-h<hours>-s<seed>-<key>/, so a rerun skips finished runs,
resumes interrupted ones and never reuses a result made under another config. The helpers'
model of each seed (the pretraining) is planned first; runs that start from it wait for it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from importlib import metadata
from pathlib import Path

from asr.config import ConfigError, RunConfig, load_run_config, run_config_to_dict, to_dict
from asr.experiment.config import ExperimentConfig, layout_name
from asr.experiment.data import data_digest, point_dir
from asr.experiment.strategies import PRETRAIN, STRATEGIES, Strategy, strategy

EXPERIMENT_FORMAT = 3  # bump when a code change changes what a run computes (3: the seams issue)
CODE_PACKAGES = ("polyglot-asr", "torch", "numpy", "sentencepiece", "jiwer")  # in every run key
# Run-config fields added since this EXPERIMENT_FORMAT, with the value that computes what the
# code did before them: at that value a field stays out of the run key, so adding an option
# keeps every finished run's key (and its ledger entry); set otherwise, it keys the run.
KEY_NEUTRAL = {("train", "validate_start"): False, ("train", "schedule_metric"): "",
               ("train", "keep_schedule_best"): False, ("train", "fresh_heads"): False}


def run_config(exp: ExperimentConfig, strategy: str, seed: int,
               layout: tuple[int, int, int] | None = None) -> RunConfig:
    """The run config of one run: base + overrides + seed + the budget rule (+ the layout
    of a sharing-depth sweep, last)."""
    b = exp.budget
    helpers, target = list(exp.helpers.locales), exp.target.locale
    if strategy == PRETRAIN:
        metric, languages, own = "mean_cer", helpers, ()
    else:
        s = STRATEGIES[strategy]
        metric, languages, own = f"{target}_cer", s.languages(helpers, target), s.overrides
    k = len(languages) if b.per_language else 1
    overrides = [*exp.run.overrides, f"train.seed={seed}", f"train.max_steps={k * b.max_steps}",
                 f"train.valid_every={k * b.valid_every}", f"train.patience={b.patience}",
                 f"train.min_steps={k * b.min_steps}",
                 f"train.select_metric={metric}"]
    if len(languages) > 1 and metric != "mean_cer":
        # selects on the target, trains until no language it learns improves any more, and
        # keeps its best on all of them too: where a fine-tuning on the target starts
        overrides += ["train.schedule_metric=mean_cer", "train.keep_schedule_best=true"]
    overrides += own
    if strategy in exp.grid.per_strategy:
        overrides += exp.grid.per_strategy[strategy].overrides
    if layout is not None:
        overrides.append(f"model.layout=[{','.join(map(str, layout))}]")
    return load_run_config(exp.run.base, overrides)


def needs_pretrain(exp: ExperimentConfig) -> bool:
    """Whether any strategy needs the helpers' model (to start from, or as forgetting's before)."""
    return any(STRATEGIES[s].scored_on_helpers for s in exp.grid.strategies)


def run_kinds(exp: ExperimentConfig) -> tuple[str, ...]:
    """The kinds of run the experiment trains: the pretraining when needed, then strategies."""
    return ((PRETRAIN,) if needs_pretrain(exp) else ()) + tuple(exp.grid.strategies)


def budget_rule(exp: ExperimentConfig) -> str:
    b = exp.budget
    per = " per language trained" if b.per_language else ""
    least = f"at least {b.min_steps} updates{per} and then " if b.min_steps else ""
    scaled = (" Counts are per language: a run on L languages (the helpers' pretraining, joint "
              "runs) gets L times as many updates, so with uniform language sampling "
              "(data.alpha=0) every language's output head gets about as many updates as the "
              f"{exp.target.locale} head of a target-only run."
              if b.per_language else "")
    metric = (f"its dev error ({exp.target.locale} dev CER, on speakers absent from training, "
              "for a run on the target alone; for a run on several languages, the helpers' "
              "pretraining and joint runs, the mean dev CER of all of them, so the target's "
              "plateau does not end the shared layers' training while the helpers still "
              "improve)")
    t = run_config(exp, run_kinds(exp)[0], 0).train
    if t.schedule == "plateau":
        until = (f"{least}until {metric} has converged: after {b.patience} validations "
                 f"{b.valid_every} updates{per} apart without improvement the learning rate is "
                 f"multiplied by {t.decay_factor:g}, and training stops when the next decay would "
                 f"take it below {100 * t.final_lr_ratio:g}% of its peak. The cap of "
                 f"{b.max_steps} updates{per} is only a safety net; a run that reaches it is "
                 "marked and no ratio is read from it")
    else:
        until = (f"{least}until {metric} has not improved for {b.patience} validations "
                 f"{b.valid_every} updates{per} apart, or until {b.max_steps} updates{per}, "
                 "whichever comes first, the cosine learning rate decaying over the cap")
    return (f"Every run, the helpers' pretraining included, trains {until}; the best validated "
            f"checkpoint on {exp.target.locale} dev CER (the helpers' mean for the pretraining), "
            "or the average of the last ones if better there, is scored." + scaled
            + " Why this "
            "is fair: each strategy trains for as long as it still improves on the same held-out "
            "dev set, checked equally often, so none is cut short by a budget tuned to another, "
            "and the cap is one number for all." + _own_settings(exp))


def _own_settings(exp: ExperimentConfig) -> str:
    own = [f"{s}: {', '.join(g.overrides)}" for s, g in exp.grid.per_strategy.items() if g.overrides]
    return f" Strategy-specific settings: {'; '.join(own)}." if own else ""


def plan_fingerprint(exp: ExperimentConfig) -> str:
    """What the run keys depend on besides the prepared data, which the config determines:
    the experiment config, EXPERIMENT_FORMAT and the code versions (ledger.py, plan.json)."""
    material = {"format": EXPERIMENT_FORMAT, "config": to_dict(exp), "versions": code_versions()}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


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

    strategy: str  # a name in strategies.STRATEGIES, or PRETRAIN
    seed: int
    hours: float | None
    cfg: RunConfig
    data_dir: Path
    locales: list[str]  # languages it trains on
    eval_locales: list[str]  # languages whose test sets it is scored on
    starts_from: Job | None = None  # the run whose model it starts from
    layout: tuple[int, int, int] | None = None  # a sharing-depth sweep's; None: the config's
    key: str = ""
    run_dir: Path = Path()
    carried: Path | None = None  # where its state outlives this machine (carry.py), if kept

    @property
    def record(self) -> Strategy | None:
        """The strategy's record; None for the helpers' pretraining."""
        return None if self.strategy == PRETRAIN else STRATEGIES[self.strategy]

    @property
    def label(self) -> str:
        layout = f" layout {layout_name(self.layout)}" if self.layout else ""
        if self.strategy == PRETRAIN:
            return f"pretrain helpers{layout} seed {self.seed}"
        return f"{self.strategy}{layout} {self.hours:g} h seed {self.seed}"


def keyed_config(cfg: RunConfig) -> dict:
    """The run config as it enters the run key: every field but those of KEY_NEUTRAL at their
    neutral value."""
    out = run_config_to_dict(cfg)
    for (section, name), neutral in KEY_NEUTRAL.items():
        if out[section][name] == neutral:
            del out[section][name]
    return out


def plan_jobs(exp: ExperimentConfig, root: Path) -> list[Job]:
    """Every run of the grid, keyed by everything that determines it, pretraining first."""
    tgt, helpers = exp.target.locale, list(exp.helpers.locales)
    data, versions = root / "data", code_versions()
    jobs, pretrains = [], {}

    def keyed(job: Job) -> Job:
        material = {"format": EXPERIMENT_FORMAT, "strategy": job.strategy, "seed": job.seed,
                    "hours": job.hours, "locales": job.locales, "config": keyed_config(job.cfg),
                    "data": data_digest(job.data_dir, sorted(set(job.locales + job.eval_locales))),
                    "pretrain": job.starts_from.key if job.starts_from else None, "versions": versions}
        job.key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:12]
        name = PRETRAIN if job.hours is None else f"{job.strategy}-h{job.hours:g}"
        layout = f"-L{layout_name(job.layout)}" if job.layout else ""
        job.run_dir = root / "runs" / f"{name}{layout}-s{job.seed}-{job.key}"
        return job

    # the helpers' model: the start of some strategies, the "before" of every forgetting row;
    # one per layout that a strategy starting from it runs with
    others = [s for s in exp.grid.strategies if STRATEGIES[s].scored_on_helpers]
    seeds = sorted({seed for s in others for seed in exp.seeds_for(s)})
    layouts = list(dict.fromkeys(
        [lay for s in others if strategy(s).start in ("helpers_model", "helpers_column")
         for lay in exp.layouts_for(s)] or [None]))
    for layout in layouts:
        for seed in seeds if exp.helpers.model_per_seed else seeds[:1]:
            pretrains[seed, layout] = keyed(Job(
                PRETRAIN, seed, None, run_config(exp, PRETRAIN, seed, layout), data / "helpers",
                helpers, helpers, layout=layout))
            jobs.append(pretrains[seed, layout])
        for seed in seeds:  # one helpers' model for every seed, unless one per seed
            pretrains.setdefault((seed, layout), pretrains[seeds[0], layout])
    joint: dict[tuple[int, float, tuple | None], Job] = {}
    # a joint run before the runs that start from it
    order = sorted(exp.grid.strategies, key=lambda n: strategy(n).start == "joint_model")
    for seed, h in exp.points():
        for name in order:
            s = strategy(name)
            if seed not in exp.seeds_for(name) or h not in exp.hours_for(name):
                continue
            for layout in exp.layouts_for(name):
                point = point_dir(data, seed, h, s.helper_text if s.with_helpers else None)
                evals = [tgt, *helpers] if s.scored_on_helpers else [tgt]
                start = (joint[seed, h, layout] if s.start == "joint_model"
                         else pretrains[seed, layout] if s.needs_model else None)
                job = keyed(Job(name, seed, h, run_config(exp, name, seed, layout), point,
                                s.languages(helpers, tgt), evals, start, layout=layout))
                if name == "joint":
                    joint[seed, h, layout] = job
                jobs.append(job)
    return jobs


def check_starts(exp: ExperimentConfig) -> None:
    """Every run that starts from a joint run finds that run in the grid (same seed, hours)."""
    has_joint = "joint" in exp.grid.strategies
    joint = ({(s, h) for s in exp.seeds_for("joint") for h in exp.hours_for("joint")}
             if has_joint else set())
    for name in exp.grid.strategies:
        if strategy(name).start == "joint_model":
            missing = sorted({(s, h) for s in exp.seeds_for(name) for h in exp.hours_for(name)}
                             - joint)
            if missing:
                seed, hours = missing[0]
                raise ConfigError(f"{name} at {hours:g} h seed {seed} starts from the joint run "
                                  "there, which the grid does not hold: add joint at those hours "
                                  "and seeds")
            stray = [lay for lay in exp.layouts_for(name)
                     if has_joint and lay not in exp.layouts_for("joint")]
            if stray:
                raise ConfigError(f"{name} with layout {layout_name(stray[0]) or 'of the run config'} "
                                  "starts from the joint run of that layout, which the grid does "
                                  "not hold: give joint the same layouts")
