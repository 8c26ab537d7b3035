"""What a training run starts from: its model, tokenizers, feature statistics and data.

The one place a model is built for training, in one of three ways:

    scratch      a fresh MultilingualCTC from cfg.model, weights from torch.manual_seed(seed),
                 feature statistics merged from the languages' training caches;
    init=PATH    a trained model file or run (fine-tuning): its weights, tokenizers and
                 statistics, a new CTC head for each language it lacks (and for every
                 language of the run with train.fresh_heads);
    base=PATH    a trained model plus a new progressive column for the run's languages
                 (asr/model/progressive.py): earlier columns frozen, the base's statistics kept.

The feature settings (asr/config.py: check_features) are checked wherever features meet a
model here: the run's against a base or init model's, and every cache's against the run's
(LanguageData). `Trainer` (asr/train.py) receives what `build_run` returns and builds nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from asr.config import RunConfig, check_features, check_input_bins
from asr.data import LanguageData, TrainingBatches
from asr.device import Dist
from asr.feature_cache import FeatureCache
from asr.features import FeatureStats
from asr.lid import LidSplit, language_splits, splits_from_dir
from asr.model.multilingual import MultilingualCTC
from asr.model.progressive import add_column
from asr.package import load_package_model
from asr.prepare import feature_dir, tokenizer_path
from asr.text import check_locale
from asr.tokenizer import Tokenizer


class StartError(ValueError):
    """A run cannot start from what it was given (the message says what to change)."""


@dataclasses.dataclass
class RunParts:
    """Everything a Trainer trains: built, checked, not yet on the device."""

    cfg: RunConfig  # the run config; its model section is the model's own
    model: torch.nn.Module  # MultilingualCTC or ProgressiveCTC, some parameters maybe frozen
    tokenizers: dict[str, Tokenizer]  # every language of the model
    stats: FeatureStats  # the normalisation the model is trained with
    batches: TrainingBatches  # the training data of the run's languages
    dev: dict[str, LanguageData]  # validation sets (languages that have a dev split)
    lid: dict[str, LidSplit]  # language-ID fit and held-out data, every language that has some


def freeze(model: torch.nn.Module, prefixes: list[str]) -> int:
    """Stop gradients to parameters whose names start with any prefix ('encoder' = all but
    the heads); returns how many parameters were frozen."""
    n = 0
    for name, p in model.named_parameters():
        if any(name.startswith(pre) or (pre == "encoder" and not name.startswith(("heads.", "lid")))
               for pre in prefixes):
            p.requires_grad_(False)
            n += p.numel()
    if prefixes and n == 0:
        raise StartError(f"--freeze {','.join(prefixes)} matched no parameters")
    return n


def keeps_lid_reference(model: torch.nn.Module, locales: list[str]) -> bool:
    """Whether fine-tuning `model` (as started, frozen where asked) on `locales` keeps a
    frozen copy of its language-independent path for language ID: when the run trains that
    path but not every language the model holds (the others would lose their LID evidence;
    asr/model/multilingual.py), and the model can identify languages at all."""
    if not isinstance(model, MultilingualCTC) or model.lid_needs_locale:
        return False
    if set(model.languages) <= set(locales):
        return False  # every language trains: the path keeps learning them all
    path = [model.frontend, model.shared]
    return any(p.requires_grad for m in path for p in m.parameters())


def start_model(cfg: RunConfig, data_dir: Path, locales: list[str],
                caches: dict[str, FeatureCache], init: str | Path | None = None,
                base: str | Path | None = None) -> tuple[RunConfig, torch.nn.Module,
                                                         dict[str, Tokenizer], FeatureStats]:
    """(cfg with the model's own model section, model, tokenizers, statistics) for a run;
    `caches`: the languages' training feature caches (a fresh model's statistics)."""
    if base is not None and init is not None:
        raise StartError("--base (a progressive column on a trained model) and --init "
                         "(fine-tuning) exclude each other: pass one")
    torch.manual_seed(cfg.train.seed)  # the same seed gives the same initial weights

    def own_tokenizers(skip=()) -> dict[str, Tokenizer]:
        return {loc: Tokenizer.load(tokenizer_path(data_dir, loc)) for loc in locales
                if loc not in skip}

    if init is None and base is None:
        tokenizers = own_tokenizers()
        model = MultilingualCTC(cfg.model, {loc: t.vocab_size for loc, t in tokenizers.items()})
        stats = FeatureStats.merged([caches[loc].stats for loc in locales])
        check_input_bins(cfg.features, cfg.model.n_mels, len(stats.mean), where="the run config")
        return cfg, model, tokenizers, stats
    path = init if init is not None else base
    model, pkg = load_package_model(path)
    check_features(pkg.config.features, cfg.features, where=f"{path} (the model this run starts from)")
    cfg = dataclasses.replace(cfg, model=model.config)
    if base is not None:
        learned = [loc for loc in locales if loc in model.languages]
        if learned:
            raise StartError(f"{base} already has {', '.join(learned)}: a progressive column is "
                             "for new languages (learned ones stay frozen in their columns)")
        tokenizers = dict(pkg.tokenizers) | own_tokenizers()
        model = add_column(model, {loc: tokenizers[loc].vocab_size for loc in locales},
                           cfg.progressive)
    else:
        tokenizers = dict(pkg.tokenizers) | own_tokenizers(skip=pkg.tokenizers)
        for loc in locales:
            if loc not in model.languages:
                model.add_language(loc, tokenizers[loc].vocab_size)
            elif cfg.train.fresh_heads:
                model.heads.reset(loc)
    return cfg, model.train(), tokenizers, pkg.stats


def _refuse_languages_without_data(why_empty: dict[str, str]) -> None:
    """StartError naming every language with no usable training utterance and why: such a
    language would still be drawn by the sampler, and its empty batch list fail mid-run."""
    if why_empty:
        detail = "; ".join(f"{loc}: {why}" for loc, why in why_empty.items())
        raise StartError(f"no usable training data for {', '.join(why_empty)} ({detail}); fix "
                         "their audio and rerun `asr prepare`, or train without them")


def _empty_caches(caches: dict[str, FeatureCache]) -> dict[str, str]:
    """locale -> why, for training caches that hold no utterance (every clip skipped)."""
    out = {}
    for loc, cache in caches.items():
        if not len(cache):
            skipped = cache.summary["skipped_ids"]
            first = next(iter(skipped.items()), None)
            out[loc] = (f"all {len(skipped)} utterances skipped when features were computed"
                        + (f", e.g. {first[0]}: {first[1]}" if first else "")
                        + f"; reasons in {cache.dir / 'index.json'}")
    return out


def build_run(cfg: RunConfig, data_dir: str | Path, locales: list[str],
              init: str | Path | None = None, base: str | Path | None = None,
              freeze_prefixes=(), dist: Dist | None = None) -> RunParts:
    """The model (see start_model), frozen where asked, and the run's data: training batches
    for this DDP rank and the dev sets of the languages that have one."""
    data_dir = Path(data_dir)
    locales = [check_locale(loc) for loc in locales]
    dist = dist or Dist.from_env()
    stray = sorted(set(cfg.data.loss_weights or {}) - set(locales))
    if stray:
        raise StartError(f"data.loss_weights names {', '.join(stray)}, which this run does not "
                         f"train (its languages: {', '.join(locales)})")
    caches = {loc: FeatureCache.open(feature_dir(data_dir, loc, "train")) for loc in locales}
    _refuse_languages_without_data(_empty_caches(caches))
    cfg, model, tokenizers, stats = start_model(cfg, data_dir, locales, caches, init=init,
                                                base=base)
    freeze(model, list(freeze_prefixes))
    if init is not None and keeps_lid_reference(model, locales):
        model.keep_lid_reference()

    def split(loc: str, name: str) -> LanguageData:
        return LanguageData(loc, data_dir / loc / f"{name}.jsonl", feature_dir(data_dir, loc, name),
                            tokenizers[loc], features=cfg.features,
                            max_utterance_seconds=(cfg.data.max_utterance_seconds
                                                   if name == "train" else None))

    train = {loc: split(loc, "train") for loc in locales}
    _refuse_languages_without_data({
        loc: "0 usable utterances, skipped: " + ", ".join(f"{n} {why}" for why, n in d.skipped.items() if n)
        for loc, d in train.items() if not len(d)})
    batches = TrainingBatches(train, cfg.data, stats,
                              seed=cfg.train.seed, rank=dist.rank, world_size=dist.world_size)
    dev = {loc: split(loc, "dev") for loc in locales if (data_dir / loc / "dev.jsonl").exists()}
    # Language ID is fitted after training on every language the model holds: the run's own,
    # and those of an --init / --base model wherever data_dir has their training data.
    lid = {loc: language_splits(train[loc], dev.get(loc)) for loc in locales}
    lid |= splits_from_dir(data_dir, [loc for loc in model.languages if loc not in lid],
                           tokenizers, cfg.features)
    return RunParts(cfg, model, tokenizers, stats, batches, dev, lid)
