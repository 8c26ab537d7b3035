"""A model file that stands alone: weights, full run config, tokenizers and feature statistics
in one safetensors file. `load_package_model(path)` rebuilds everything from it, never unpickling.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from asr import checkpoint as ckpt
from asr.config import RunConfig, run_config_from_dict, run_config_to_dict
from asr.features import FeatureStats
from asr.model.multilingual import MultilingualCTC
from asr.model.progressive import ProgressiveCTC
from asr.text import check_locale
from asr.tokenizer import Tokenizer

MODEL_FILE = "model.safetensors"  # a run's model: its best on train.select_metric
# with train.keep_schedule_best, beside it: the best on train.schedule_metric
SCHEDULE_MODEL_FILE = "model_schedule_best.safetensors"


@dataclasses.dataclass
class ModelPackage:
    config: RunConfig
    tokenizers: dict[str, Tokenizer]
    stats: FeatureStats
    meta: dict
    path: Path | None = None  # the model file it was loaded from, for messages


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DDP and torch.compile wrappers (their prefixes never reach disk)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def save_model(path, model, cfg: RunConfig, tokenizers: dict[str, Tokenizer],
               stats: FeatureStats, state: dict | None = None, extra: dict | None = None,
               lid: dict | None = None) -> None:
    """Write `model` (or the tensors `state`) with everything needed to use it. `lid`: what
    fitting its language-ID head measured (asr/lid.py LidRecord), None while unfitted."""
    model = unwrap(model)
    tensors = {f"model.{k}": v for k, v in (state or model.state_dict()).items()}
    for loc in model.languages:
        tensors[f"tokenizer.{loc}"] = torch.frombuffer(bytearray(tokenizers[loc].to_bytes()),
                                                       dtype=torch.uint8)
    meta = {"config": run_config_to_dict(cfg), "languages": list(model.languages),
            "vocab_sizes": {loc: tokenizers[loc].vocab_size for loc in model.languages},
            "feature_stats": stats.to_dict(), "lid": lid} | _architecture(model) | (extra or {})
    ckpt.save_package(path, tensors, meta)


def _architecture(model) -> dict:
    """Metadata that lets `load_package_model` rebuild the model class and its columns."""
    if isinstance(model, ProgressiveCTC):
        return {"architecture": "progressive", "progressive": model.spec()}
    return {"architecture": "multilingual", "lid_reference": model.lid_reference is not None}


def resolve_model_path(path: str | Path) -> Path:
    """A run directory or a model file -> the model file."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def _build(cfg: RunConfig, meta: dict, vocab_sizes: dict[str, int]) -> torch.nn.Module:
    """The model class and columns the metadata describes, with fresh weights on the current
    default device (the meta device first, so a header's claims allocate nothing)."""
    architecture = meta.get("architecture", "multilingual")  # files from before the field
    if architecture == "progressive":
        return ProgressiveCTC.from_spec(cfg.model, meta["progressive"], vocab_sizes)
    if architecture == "multilingual":
        model = MultilingualCTC(cfg.model, vocab_sizes)
        if meta.get("lid_reference"):  # absent from files before the field: none kept
            model.keep_lid_reference()
        return model
    raise ValueError(f"unknown architecture {architecture!r}")


def _check_block_count(cfg: RunConfig, meta: dict, n_tensors: int) -> None:
    """Refuse a layout with more blocks than the file has tensors for, before even the meta
    device builds them (a million claimed blocks would take minutes and gigabytes of modules)."""
    below, shared, above = cfg.model.layout
    columns = meta["progressive"]["columns"] if meta.get("architecture") == "progressive" else [
        {"languages": meta["languages"]}]
    if not isinstance(columns, list) or len(columns) > n_tensors:
        raise ValueError(f"{len(columns)} progressive columns, more than the file's {n_tensors} "
                         "model tensors")
    blocks = sum(shared + len(c["languages"]) * (below + above) for c in columns)
    if blocks > n_tensors:  # every Conformer block holds several tensors
        raise ValueError(f"layout {list(cfg.model.layout)} means {blocks} Conformer blocks, more "
                         f"than the file's {n_tensors} model tensors could hold")


def _check_shapes(expected: dict[str, torch.Size], tensors: dict[str, torch.Tensor]) -> None:
    """The file's model tensors must be exactly the parameters the metadata describes."""
    found = {k[len("model."):]: v.shape for k, v in tensors.items() if k.startswith("model.")}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = [f"{k} is {list(found[k])}, the metadata implies {list(expected[k])}"
             for k in sorted(set(expected) & set(found)) if found[k] != expected[k]]
    if missing or extra or wrong:
        parts = ([f"{len(missing)} tensors missing (e.g. {missing[0]})"] if missing else []) + (
            [f"{len(extra)} unexpected tensors (e.g. {extra[0]})"] if extra else []) + wrong[:1]
        raise ValueError("the metadata does not match the tensors: " + "; ".join(parts))


def load_package_model(path: str | Path, device: str | torch.device = "cpu"
                       ) -> tuple[MultilingualCTC | ProgressiveCTC, ModelPackage]:
    """Rebuild the model and its package (config, tokenizers, statistics) from one file.

    Everything the metadata claims is checked against the tensors present before anything is
    allocated from it: the block count against the number of tensors, then every parameter's
    name and shape (from a model built on the meta device) against the file's. Memory stays
    bounded by the file's size, whatever its header says."""
    path = resolve_model_path(path)
    tensors, meta = ckpt.load_package(path)
    try:
        if "lid" not in meta:
            raise ValueError("written by a version that trained language ID beside CTC; "
                             "train the model again")
        cfg = run_config_from_dict(meta["config"])
        languages = meta["languages"]
        for loc in languages:
            check_locale(loc)  # a locale names files and heads: never take one unchecked
        if not all(f"tokenizer.{loc}" in tensors for loc in languages):
            raise ValueError("a language without its tokenizer tensor")
        vocab_sizes = {loc: meta["vocab_sizes"][loc] for loc in languages}
        if not all(type(v) is int and v > 0 for v in vocab_sizes.values()):
            raise ValueError(f"vocabulary sizes must be positive integers, got {vocab_sizes}")
        _check_block_count(cfg, meta, sum(k.startswith("model.") for k in tensors))
        with torch.device("meta"):
            expected = {k: v.shape for k, v in _build(cfg, meta, vocab_sizes).state_dict().items()}
        _check_shapes(expected, tensors)
        tokenizers = {loc: Tokenizer.from_bytes(tensors[f"tokenizer.{loc}"].numpy().tobytes())
                      for loc in languages}
        for loc, tok in tokenizers.items():
            if tok.vocab_size != vocab_sizes[loc]:
                raise ValueError(f"the {loc} tokenizer has {tok.vocab_size} units, its head "
                                 f"{vocab_sizes[loc]}")
        stats = FeatureStats.from_dict(meta["feature_stats"])
        model = _build(cfg, meta, vocab_sizes)
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items()
                               if k.startswith("model.")})
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        raise ckpt.CheckpointError(f"{path}: inconsistent model file ({e})") from None
    model.to(device).eval()
    return model, ModelPackage(cfg, tokenizers, stats, meta, path=path)
