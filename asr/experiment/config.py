"""The transfer experiment's config: one YAML of plain values (asr/configs/experiments/*.yaml).

It names the corpus, the target language and its grid of training hours, the helper
languages, the strategies (asr/experiment/strategies.py), the seeds (hours and seeds can be
narrowed or extended per strategy), the run config and one training-budget rule.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from asr.config import CONFIG_DIR, ConfigError, apply_overrides, from_dict, load_yaml
from asr.experiment.strategies import strategy
from asr.languages import resolve_units

EXPERIMENT_DIR = CONFIG_DIR / "experiments"


@dataclasses.dataclass(frozen=True)
class SynthSpec:
    """How to synthesise the corpus when it is missing (data_prep.synth.synthesize_corpus)."""

    hours: dict[str, float]  # train hours per locale (the target's pool must cover the grid)
    eval_hours: float = 0.05  # dev and test hours each, per locale
    seed: int = 0
    zh_inventory_size: int = 300
    workers: int = 2
    # a recording channel shared by every speaker of a locale (data_prep/synth_plan.py
    # CHANNELS), e.g. {zh-CN: telephone}: one language's input made to differ from the others'
    channels: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
    root: str  # Common Voice release root (real or synthetic), relative to the working directory
    synth: SynthSpec | None = None  # None: a real release, never synthesised
    train_source: typing.Literal["train", "validated"] = "train"
    units: typing.Literal["char", "unigram", "bpe"] = "char"  # output units of spaced scripts
    vocab_size: int = 256  # subword vocabulary (units unigram or bpe)
    # per-locale units in place of the default (asr/languages.py), e.g. {zh-CN: pinyin}
    units_for: dict[str, str] = dataclasses.field(default_factory=dict)
    workers: int = 2  # feature-extraction processes


@dataclasses.dataclass(frozen=True)
class TargetSpec:
    locale: str  # any Common Voice locale (asr/languages.py)
    hours: tuple[float, ...]  # the grid of training hours
    min_test_utterances: int = 0  # refuse to run on a smaller test set


@dataclasses.dataclass(frozen=True)
class HelperSpec:
    locales: tuple[str, ...]
    hours: float | None = None  # per helper language; None: the whole training pool
    seed: int = 0  # seed of the helpers' subsets (fixed across the grid's seeds)
    # True: one helpers' model per seed of the grid; False: one, trained with the grid's
    # smallest seed, that every seed's runs start from (the seeds then vary the target subset
    # and the later training, not the pretraining: the usual practice, and a pretraining
    # longer than a session is paid once)
    model_per_seed: bool = True


@dataclasses.dataclass(frozen=True)
class StrategyGrid:
    """One strategy's own target hours and/or seeds, in place of the grid's, and run-config
    overrides of its own (`section.key=value`, after run.overrides)."""

    hours: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None
    overrides: tuple[str, ...] = ()
    # model.layout values [below, shared, above], one run each (the helpers' model it starts
    # from, if any, with the same layout): which layers to share, as a sweep dimension.
    # None: the run config's own layout
    layouts: tuple[tuple[int, int, int], ...] | None = None


@dataclasses.dataclass(frozen=True)
class GridSpec:
    strategies: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    # e.g. the costly joint runs at the smallest hours only, or target_only extended past the
    # largest point so that every ratio is interpolated on its curve rather than bounded
    per_strategy: dict[str, StrategyGrid] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for name in self.strategies:
            strategy(name)  # an unknown name raises, listing the known ones
        stray = sorted(set(self.per_strategy) - set(self.strategies))
        if stray:
            raise ValueError(f"per_strategy names {stray[0]!r}, which is not in strategies")
        for s, g in self.per_strategy.items():
            if (g.hours is not None and (not g.hours or min(g.hours) <= 0)) or g.seeds == ():
                raise ValueError(f"per_strategy.{s}: give at least one positive hours value "
                                 "and one seed")
            if g.layouts is not None:
                if not g.layouts or len(set(g.layouts)) != len(g.layouts):
                    raise ValueError(f"per_strategy.{s}.layouts: give distinct layouts")
                if strategy(s).start == "helpers_column":
                    raise ValueError(f"per_strategy.{s}.layouts: a progressive column keeps the "
                                     "layout of the helpers' column; layouts are for the others")


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
    # the committed record of finished runs (asr/experiment/ledger.py), relative to the
    # working directory, e.g. docs/results/transfer_full/ledger.jsonl; None: none kept
    ledger: str | None = None
    # other experiments' ledgers, read only: a run whose key one of them holds (the same run
    # config, data and code) is taken from there into this ledger instead of trained again
    ledgers_from: tuple[str, ...] = ()

    def hours_for(self, strategy: str) -> tuple[float, ...]:
        g = self.grid.per_strategy.get(strategy)
        return g.hours if g and g.hours is not None else self.target.hours

    def seeds_for(self, strategy: str) -> tuple[int, ...]:
        g = self.grid.per_strategy.get(strategy)
        return g.seeds if g and g.seeds is not None else self.grid.seeds

    def layouts_for(self, strategy: str) -> tuple[tuple[int, int, int] | None, ...]:
        """The layouts a strategy runs with; (None,): the run config's own."""
        g = self.grid.per_strategy.get(strategy)
        return g.layouts if g and g.layouts is not None else (None,)

    def points(self, strategies: tuple[str, ...] | None = None) -> list[tuple[int, float]]:
        """The (seed, target hours) points that these strategies (default: all) train on."""
        return sorted({(seed, h) for s in (strategies or self.grid.strategies)
                       for seed in self.seeds_for(s) for h in self.hours_for(s)})


def layout_name(layout: tuple[int, int, int] | None) -> str:
    """"0-3-1" for a layout [below, shared, above]; "" for the run config's own."""
    return "" if layout is None else "-".join(map(str, layout))


def layout_kind(layout: tuple[int, int, int]) -> str:
    """What a layout [below, shared, above] shares: "all shared", "no sharing", "shared bottom"
    (per-language top), "shared middle" (per-language input and top), "shared top"."""
    below, shared, above = layout
    if shared == 0:
        return "no sharing"
    if below == 0:
        return "all shared" if above == 0 else "shared bottom"
    return "shared middle" if above else "shared top"


def shipped_experiments() -> list[str]:
    """The names of the experiments shipped in asr/configs/experiments."""
    return sorted(x.stem for x in EXPERIMENT_DIR.glob("*.yaml"))


def experiment_path(name: str | Path) -> Path:
    """A YAML path, or the name of a shipped experiment (asr/configs/experiments/<name>.yaml)."""
    p = Path(name)
    if p.exists():
        return p
    if not p.suffix and (EXPERIMENT_DIR / f"{p}.yaml").exists():
        return EXPERIMENT_DIR / f"{p}.yaml"
    raise ConfigError(f"{name}: no such experiment config "
                      f"(shipped: {', '.join(shipped_experiments())})")


def read_experiment_config(name: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """An experiment YAML with `section.key=value` overrides applied, its own values checked
    (asr.experiment.load_experiment_config also checks every run config it implies)."""
    data = apply_overrides(load_yaml(experiment_path(name)), list(overrides))
    exp = from_dict(ExperimentConfig, data)
    c = exp.corpus
    try:
        for loc in (exp.target.locale, *exp.helpers.locales):
            resolve_units(loc, c.units, c.units_for)  # a bad code or unit names the locale
    except ValueError as e:
        raise ConfigError(f"target/helpers: {e}") from None
    stray = sorted(set(c.units_for) - {exp.target.locale, *exp.helpers.locales})
    if stray:
        raise ConfigError(f"corpus.units_for names {stray[0]}, which is neither the target nor a "
                          "helper")
    if exp.target.locale in exp.helpers.locales:
        raise ConfigError(f"target {exp.target.locale} is also a helper language")
    if not exp.target.hours or min(exp.target.hours) <= 0:
        raise ConfigError("target.hours: give at least one positive number of hours")
    if exp.ledgers_from and not exp.ledger:
        raise ConfigError("ledgers_from needs a ledger of this experiment's own to take runs into")
    return exp
