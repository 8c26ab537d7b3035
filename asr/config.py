"""Typed run configuration: frozen dataclasses, loaded from YAML values, overridable with --set.

YAML only holds values; nothing in a config instantiates objects. Unknown keys and wrong types
are errors that name the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from pathlib import Path

import yaml

from asr.audio import SAMPLE_RATE
from asr.fileio import refuse_special

CONFIG_DIR = Path(__file__).parent / "configs"
SELECT_METRIC = re.compile(r"[A-Za-z0-9-]+_(cer|wer)")  # mean_cer, zh-CN_wer, ...


class ConfigError(ValueError):
    """A config value or key that cannot be used; the message names the key."""


def _coerce(value, hint, key: str):
    """Check `value` against the type hint `hint`, converting where it is lossless."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = args or (typing.Any, typing.Any)
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, prefix=f"{key}.")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and (
        not isinstance(value, hint) or (hint is not bool and isinstance(value, bool))
    ):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
    return value


def from_dict(cls, data: dict | None, prefix: str = ""):
    """Build dataclass `cls` from a plain mapping; unknown keys and wrong types raise ConfigError."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]} (known keys of {prefix.rstrip('.') or cls.__name__}: "
            f"{', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        where = prefix.rstrip(".") or cls.__name__
        raise ConfigError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None


def to_dict(obj) -> dict:
    """A dataclass as plain JSON/YAML-safe values (tuples become lists)."""

    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(obj).items()}


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `section.key=value` strings (values parsed as YAML) to a nested mapping."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for item in overrides:
        dotted, sep, raw = item.partition("=")
        if not sep or "." not in dotted:
            raise ConfigError(f"bad override {item!r}: expected section.key=value, e.g. train.lr=1e-3")
        section, key = dotted.split(".", 1)
        target = data.setdefault(section, {})
        *parents, leaf = key.split(".")
        for p in parents:
            target = target.setdefault(p, {})
        target[leaf] = _parse_value(raw)
    return data


def _parse_value(raw: str):
    """A YAML value, plus the number forms YAML 1.1 reads as strings (`5e-4`)."""
    value = yaml.safe_load(raw)
    if isinstance(value, str):
        for number in (int, float):
            try:
                return number(value)
            except ValueError:
                pass
    return value


@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed values of a numeric config field; each bound closed or open (None: none)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value) -> bool:
        return not ((self.low is not None and (value < self.low or (self.low_open and value == self.low)))
                    or (self.high is not None and (value > self.high
                                                   or (self.high_open and value == self.high))))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


def ranged(default, low=None, high=None, low_open: bool = False, high_open: bool = False):
    """A dataclass field whose value `check_ranges` keeps inside [low, high] (or open bounds)."""
    return dataclasses.field(default=default,
                             metadata={"range": Range(low, high, low_open, high_open)})


def check_ranges(obj, section: str) -> None:
    """Raise ValueError naming `section.key`, the value and the allowed range, for the first
    field of dataclass `obj` outside its Range, or any float field that is NaN or infinite."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{section}.{f.name} must be a finite number, got {value}")
        allowed = f.metadata.get("range")
        if allowed is not None and value is not None and value not in allowed:
            raise ValueError(f"{section}.{f.name} must be {allowed}, got {value!r}")


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config of plain values; a name without a path means a shipped config."""
    p = Path(path)
    if not p.exists() and not p.suffix and (CONFIG_DIR / f"{p}.yaml").exists():
        p = CONFIG_DIR / f"{p}.yaml"
    if not p.exists():
        shipped = ", ".join(sorted(x.stem for x in CONFIG_DIR.glob("*.yaml")))
        raise ConfigError(f"{path}: no such config file (shipped configs: {shipped})")
    refuse_special(p)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of sections at the top level")
    return data


# ---- features and data: torch-free, so a whole run config loads without torch -------------
FEATURE_FIELDS = ("n_mels", "win_ms", "hop_ms")  # the settings that change feature values


class FeatureMismatchError(ValueError):
    """Features computed with other settings than the model's; the message names both."""


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """How audio becomes features (FEATURE_FIELDS: a feature cache's identity) and how features
    are augmented in training (the SpecAugment fields, applied on the fly)."""

    n_mels: int = ranged(80, 1, 512)  # mel bins
    win_ms: float = ranged(25.0, 0, 1000, low_open=True)  # analysis window = FFT size
    hop_ms: float = ranged(10.0, 0, 1000, low_open=True)  # frame shift
    freq_masks: int = ranged(2, 0)  # frequency masks per utterance
    freq_mask_width: int = ranged(15, 0)  # max mel bins per frequency mask
    time_masks: int = ranged(10, 0)  # max time masks per utterance
    # one time mask per this many real frames, up to time_masks
    frames_per_time_mask: int = ranged(100, 1)
    time_mask_width_frames: int = ranged(40, 0)  # max frames per time mask
    # all time masks together cover at most this share of frames
    time_mask_max_ratio: float = ranged(0.2, 0, 1)

    def __post_init__(self):
        check_ranges(self, "features")

    @property
    def n_fft(self) -> int:
        return int(round(self.win_ms * SAMPLE_RATE / 1000))  # samples

    @property
    def hop_length(self) -> int:
        return int(round(self.hop_ms * SAMPLE_RATE / 1000))  # samples

    def identity(self) -> dict:
        """The FEATURE_FIELDS values: what a feature cache built with this config stores."""
        return {k: getattr(self, k) for k in FEATURE_FIELDS}


def _same(a, b) -> bool:
    try:
        return float(a) == float(b)  # 10 (YAML, JSON) and 10.0 are the same hop
    except (TypeError, ValueError):
        return a == b


def check_features(expected: FeatureConfig, found: dict | FeatureConfig, where: str) -> None:
    """Raise FeatureMismatchError when features computed with `found` (a FeatureConfig, or the
    settings a feature cache stores) differ from the model's `expected` in a FEATURE_FIELDS
    value; `where` names the features (a cache folder, a model file) in the one-line message."""
    got = found.identity() if isinstance(found, FeatureConfig) else dict(found)
    differ = [k for k in FEATURE_FIELDS if not _same(got.get(k), getattr(expected, k))]
    if differ:
        def settings(values: dict) -> str:
            return ", ".join(f"{k}={values.get(k)!r}" for k in differ)

        raise FeatureMismatchError(
            f"{where}: features were computed with {settings(got)} but the model uses "
            f"{settings(expected.identity())}; prepare the data again with the model's settings "
            "or drop the override")


def check_input_bins(features: FeatureConfig, model_n_mels: int, stats_bins: int, where: str) -> None:
    """Raise FeatureMismatchError unless features of `features.n_mels` bins are what the model's
    input (`model_n_mels`) and its normalisation statistics (`stats_bins`) take."""
    if features.n_mels == model_n_mels == stats_bins:
        return
    raise FeatureMismatchError(
        f"{where}: features have n_mels={features.n_mels} but the model takes n_mels="
        f"{model_n_mels} and its normalisation statistics have {stats_bins} bins; the file is "
        "inconsistent: rebuild it from its run directory")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How utterances become batches."""

    batch_frames: int = ranged(24000, 1)  # padded 10 ms input frames per batch (240 s of audio)
    max_batch_utterances: int = ranged(128, 1)
    # language sampling p_l ∝ hours_l^alpha: 1 proportional, 0 uniform
    alpha: float = ranged(0.5, 0)
    # longer training utterances are skipped (counted)
    max_utterance_seconds: float = ranged(20.0, 0, low_open=True)
    loss_weights: dict[str, float] | None = None  # per-language loss weight, default 1

    def __post_init__(self):
        check_ranges(self, "data")
        for loc, w in (self.loss_weights or {}).items():
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"data.loss_weights.{loc} must be a finite number >= 0, got {w}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, validation and checkpoint selection."""

    seed: int = ranged(0, 0)
    max_steps: int = ranged(4000, 1)  # optimizer updates
    # peak learning rate, after warmup (1e-3, 2e-3: far longer in CTC's blank plateau)
    lr: float = ranged(5e-4, 0, 10, low_open=True)
    warmup_steps: int = ranged(400, 0)
    # cosine: decay from lr to lr * final_lr_ratio at max_steps, whatever happens on dev.
    # plateau: hold lr after warmup; after `patience` validations without improvement (past
    # min_steps) multiply it by decay_factor; stop when that would take it below
    # lr * final_lr_ratio. The cap max_steps is then only a safety net.
    schedule: typing.Literal["cosine", "plateau"] = "cosine"
    final_lr_ratio: float = ranged(0.05, 0, 1, low_open=True)
    # plateau: lr multiplier at each plateau
    decay_factor: float = ranged(0.5, 0, 1, low_open=True, high_open=True)
    weight_decay: float = ranged(1e-2, 0)
    grad_clip: float = ranged(5.0, 0, low_open=True)
    accum_steps: int = ranged(1, 1)  # batches per optimizer update
    # auto: bf16 where the hardware runs it natively, fp16 on GPUs without bf16, else fp32
    # (asr/device.py); an explicit bf16 on other hardware is obeyed with a warning
    precision: typing.Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    spec_augment: bool = True
    valid_every: int = ranged(250, 1)  # steps between validations
    select_metric: str = "mean_cer"  # mean_cer, mean_wer, or <locale>_cer / <locale>_wer
    # the dev metric that patience counts (early stop, plateau decay); "": select_metric.
    # A multilingual run selecting on one language can decay and stop on all of them: the
    # target's plateau then no longer ends the training of the shared layers (measured: a
    # joint run on 0.05 h of zh-CN, stopping on zh-CN's dev CER alone, stopped with de at
    # 87% dev CER, against 3.6% in the helpers' model)
    schedule_metric: str = ""
    # with a schedule_metric of its own: also keep the checkpoint best on it, as
    # model_schedule_best.safetensors beside model.safetensors (the best on select_metric).
    # A joint model is scored on the target's best, and a fine-tuning on the target starts
    # from its best on all languages (on 0.05 h of zh-CN: updates 1,500 and 29,000 of the
    # same run, mean dev CER 85% and 23%)
    keep_schedule_best: bool = False
    # validations without improvement of schedule_metric before stopping (cosine) or
    # decaying (plateau); 0: never
    patience: int = ranged(0, 0)
    # no early stop before this many updates (CTC's initial blank plateau)
    min_steps: int = ranged(0, 0)
    # last N validation checkpoints kept (and averaged at the end)
    keep_checkpoints: int = ranged(3, 1)
    # validate the starting model before the first update, as a candidate for the best: a
    # fine-tuning of a model that already has the selected language's head then never ends
    # worse on dev than where it started (a converged joint model re-warmed to the peak
    # learning rate on 0.1 h of zh-CN ended at 72.2% test CER against its start's 70.3%)
    validate_start: bool = False
    # fine-tuning (--init): the model's CTC heads of the run's languages start fresh, as for a
    # language it lacks. A joint model's head of a language with minutes of audio has learned
    # them by heart (training loss ~0.01): fine-tuned from it, little loss is left to follow
    fresh_heads: bool = False
    log_every: int = ranged(20, 1)
    max_bad_steps: int = ranged(20, 1)  # consecutive non-finite losses before training aborts

    def __post_init__(self):
        check_ranges(self, "train")
        if not SELECT_METRIC.fullmatch(self.select_metric):
            raise ValueError(f"train.select_metric must be mean_cer, mean_wer or "
                             f"<locale>_cer / <locale>_wer, got {self.select_metric!r}")
        if self.schedule_metric and not SELECT_METRIC.fullmatch(self.schedule_metric):
            raise ValueError(f"train.schedule_metric must be empty (select_metric), mean_cer, "
                             f"mean_wer or <locale>_cer / <locale>_wer, got "
                             f"{self.schedule_metric!r}")
        if self.keep_schedule_best and self.patience_metric == self.select_metric:
            raise ValueError("train.keep_schedule_best needs a train.schedule_metric other than "
                             f"select_metric ({self.select_metric}): else it is model.safetensors")

    @property
    def patience_metric(self) -> str:
        """The dev metric that early stopping and plateau decay follow."""
        return self.schedule_metric or self.select_metric


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Conformer-CTC dimensions and the sharing pattern of the block stack.

    `layout = (below, shared, above)` counts Conformer blocks, bottom to top:
      - `below`: per-language input blocks (each language has its own copy),
      - `shared`: blocks every language runs through,
      - `above`: per-language top blocks, just under each language's CTC head.
    So (0, N, 0) is one fully shared encoder, (0, K, N - K) a shared bottom with per-language
    tops, (0, 0, N) separate models, and (a, b, c) a shared middle.

    The 4x subsampling front end goes with the lowest block: shared when the lowest block is
    shared (below == 0 and shared > 0), per language otherwise, so (0, 0, N) really is N
    independent encoders and only the language-ID head joins them.
    """

    n_mels: int = 80  # input feature bins
    d_model: int = 176  # width of every block
    n_heads: int = 4  # attention heads; d_model / n_heads must be even (rotary pairs)
    ff_mult: int = 2  # feed-forward hidden width = ff_mult * d_model
    conv_kernel: int = 15  # depthwise conv kernel, frames after subsampling (odd)
    subsampling_channels: int = 64  # channels of the two stride-2 convs in the front end
    dropout: float = 0.1
    layout: tuple[int, int, int] = (0, 10, 0)  # blocks (per-language below, shared, per-language above)

    def __post_init__(self):
        if isinstance(self.layout, list):  # YAML and JSON give lists
            object.__setattr__(self, "layout", tuple(self.layout))
        for name in ("n_mels", "d_model", "n_heads", "ff_mult", "conv_kernel", "subsampling_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"model.d_model={self.d_model} must split into n_heads={self.n_heads} "
                             "heads of even width (rotary embeddings rotate pairs of channels)")
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"model.conv_kernel must be odd so the conv is centred, got {self.conv_kernel}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if (len(self.layout) != 3 or any(isinstance(n, bool) or not isinstance(n, int) or n < 0
                                         for n in self.layout) or sum(self.layout) == 0):
            raise ValueError(f"model.layout must be three non-negative block counts "
                             f"[below, shared, above] with at least one block, got {list(self.layout)}")

    @property
    def n_blocks(self) -> int:
        """Blocks on one language's path through the encoder."""
        return sum(self.layout)


@dataclasses.dataclass(frozen=True)
class ProgressiveConfig:
    """How a new column connects to the earlier ones (the `progressive:` config section).

    adapter_blocks: lateral positions (0..layout[1], see the module docstring); None = all of
    them; [] = no laterals, i.e. the new column is trained alone (the ablation).
    """

    adapter_dim: int = 64  # hidden width of each lateral adapter MLP
    adapter_blocks: tuple[int, ...] | None = None
    init: typing.Literal["random", "copy"] = "random"  # new column: fresh, or a copy of the previous column
    lateral_scale_init: float = 0.1  # initial alpha on each earlier column's features

    def __post_init__(self):
        if isinstance(self.adapter_blocks, list):  # YAML and JSON give lists
            object.__setattr__(self, "adapter_blocks", tuple(self.adapter_blocks))
        if isinstance(self.adapter_dim, bool) or not isinstance(self.adapter_dim, int) or self.adapter_dim < 1:
            raise ValueError(f"progressive.adapter_dim must be a positive integer, got {self.adapter_dim!r}")
        if self.adapter_blocks is not None:
            if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in self.adapter_blocks):
                raise ValueError("progressive.adapter_blocks must be non-negative block indices, "
                                 f"got {list(self.adapter_blocks)}")
            object.__setattr__(self, "adapter_blocks", tuple(sorted(set(self.adapter_blocks))))
        if self.init not in ("random", "copy"):
            raise ValueError(f"progressive.init must be 'random' or 'copy', got {self.init!r}")
        if not isinstance(self.lateral_scale_init, (int, float)) or not math.isfinite(self.lateral_scale_init):
            raise ValueError(f"progressive.lateral_scale_init must be a finite number, got {self.lateral_scale_init!r}")

    def positions(self, n_shared: int) -> tuple[int, ...]:
        """Lateral positions for a column with `n_shared` shared blocks (0..n_shared)."""
        if self.adapter_blocks is None:
            return tuple(range(n_shared + 1))
        bad = [i for i in self.adapter_blocks if i > n_shared]
        if bad:
            raise ValueError(f"progressive.adapter_blocks {bad} out of range: positions run from 0 "
                             f"(input of the first block) to {n_shared} (the shared output)")
        return self.adapter_blocks


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; saved in full in every run directory and model file."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    features: FeatureConfig = dataclasses.field(default_factory=FeatureConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    progressive: ProgressiveConfig = dataclasses.field(default_factory=ProgressiveConfig)  # settings of a new progressive column (train --strategy progressive)


def run_config_from_dict(data: dict) -> RunConfig:
    """Sections model/features/data/train/progressive into their dataclasses; unknown sections raise."""

    sections = {"model": ModelConfig, "features": FeatureConfig, "data": DataConfig,
                "train": TrainConfig, "progressive": ProgressiveConfig}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"unknown config section {unknown[0]!r} (known: {', '.join(sections)})")
    data = _without_retired_keys(data)
    return RunConfig(**{name: from_dict(cls, data.get(name), prefix=f"{name}.")
                        for name, cls in sections.items()})


def _without_retired_keys(data: dict) -> dict:
    """Model files and run folders written before speed perturbation was removed carry
    features.speed_factors; [1.0] (off, the only value anything trained on) is dropped."""
    features = data.get("features")
    if not isinstance(features, dict) or "speed_factors" not in features:
        return data
    if list(features["speed_factors"] or []) not in ([1.0], [1]):
        raise ConfigError(f"features.speed_factors={features['speed_factors']}: speed perturbation "
                          "was removed (training never read the perturbed copies); drop the key")
    return data | {"features": {k: v for k, v in features.items() if k != "speed_factors"}}


def load_run_config(path: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """A shipped or user YAML (default: `default`), then `--set section.key=value` overrides."""
    data = load_yaml(path or "default")
    return run_config_from_dict(apply_overrides(data, list(overrides)))


def run_config_to_dict(cfg: RunConfig) -> dict:
    return {name: to_dict(getattr(cfg, name))
            for name in ("model", "features", "data", "train", "progressive")}
