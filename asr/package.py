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

MODEL_FILE = "model.safetensors"


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
               stats: FeatureStats, state: dict | None = None, extra: dict | None = None) -> None:
    """Write `model` (or the tensors `state`) with everything needed to use it."""
    model = unwrap(model)
    tensors = {f"model.{k}": v for k, v in (state or model.state_dict()).items()}
    for loc in model.languages:
        tensors[f"tokenizer.{loc}"] = torch.frombuffer(bytearray(tokenizers[loc].to_bytes()),
                                                       dtype=torch.uint8)
    meta = {"config": run_config_to_dict(cfg), "languages": list(model.languages),
            "vocab_sizes": {loc: tokenizers[loc].vocab_size for loc in model.languages},
            "feature_stats": stats.to_dict()} | _architecture(model) | (extra or {})
    ckpt.save_package(path, tensors, meta)


def _architecture(model) -> dict:
    """Metadata that lets `load_package_model` rebuild the model class and its columns."""
    if isinstance(model, ProgressiveCTC):
        return {"architecture": "progressive", "progressive": model.spec()}
    return {"architecture": "multilingual"}


def resolve_model_path(path: str | Path) -> Path:
    """A run directory or a model file -> the model file."""
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def load_package_model(path: str | Path, device: str | torch.device = "cpu"
                       ) -> tuple[MultilingualCTC | ProgressiveCTC, ModelPackage]:
    """Rebuild the model and its package (config, tokenizers, statistics) from one file."""
    path = resolve_model_path(path)
    tensors, meta = ckpt.load_package(path)
    try:
        cfg = run_config_from_dict(meta["config"])
        for loc in meta["languages"]:
            check_locale(loc)  # a locale names files and heads: never take one unchecked
        tokenizers = {loc: Tokenizer.from_bytes(tensors[f"tokenizer.{loc}"].numpy().tobytes())
                      for loc in meta["languages"]}
        stats = FeatureStats.from_dict(meta["feature_stats"])
        vocab_sizes = {loc: meta["vocab_sizes"][loc] for loc in meta["languages"]}
        architecture = meta.get("architecture", "multilingual")  # files from before the field
        if architecture == "progressive":
            model = ProgressiveCTC.from_spec(cfg.model, meta["progressive"], vocab_sizes)
        elif architecture == "multilingual":
            model = MultilingualCTC(cfg.model, vocab_sizes)
        else:
            raise ValueError(f"unknown architecture {architecture!r}")
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items()
                               if k.startswith("model.")})
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ckpt.CheckpointError(f"{path}: inconsistent model file ({e})") from None
    model.to(device).eval()
    return model, ModelPackage(cfg, tokenizers, stats, meta, path=path)
