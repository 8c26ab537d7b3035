"""Log-mel features, SpecAugment, CMVN statistics and batching, as pure functions.

waveform (N,) float32 at 16 kHz -> log-mel (T, n_mels) with T = 1 + N // HOP_LENGTH.
The mel scale and filter normalisation are librosa's defaults (Slaney), so features agree with
`librosa.feature.melspectrogram(..., center=True, pad_mode="reflect")` followed by a natural log.
The settings (FeatureConfig) live in asr.config, which loads without torch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from asr.audio import SAMPLE_RATE
from asr.config import FeatureConfig

_DEFAULT = FeatureConfig()  # the shipped settings, which the constants below describe
N_FFT = _DEFAULT.n_fft  # 400 samples, 25 ms window at 16 kHz
HOP_LENGTH = _DEFAULT.hop_length  # 160 samples, 10 ms frame shift at 16 kHz
N_MELS = _DEFAULT.n_mels  # 80
N_FREQS = N_FFT // 2 + 1  # 201 FFT bins
FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100 frames/s
LOG_FLOOR = 1e-10  # power floor before the log: silence maps to ln(1e-10) ≈ -23.0, not -inf
SILENCE_LOG_MEL = math.log(LOG_FLOOR)  # ≈ -23.03, every bin of digital silence
MIN_STD = 1e-5  # floor on a bin's std in normalize(), so a constant bin cannot divide by zero
# Largest |log-mel| taken as a feature. Audio within asr.audio_io.MAX_SAMPLE_MAGNITUDE peaks
# near ln(power) ≈ 20 and digital silence sits at SILENCE_LOG_MEL ≈ -23; beyond ±50 (natural
# log of power) a value says the computation went wrong, and float16 caches overflow at 65504.
MAX_ABS_LOG_MEL = 50.0


def feature_problem(feats: np.ndarray | torch.Tensor) -> str | None:
    """Why a (T, F) feature matrix must not be used (NaN, infinite or absurd values), or None."""
    x = torch.as_tensor(feats)
    if x.numel() == 0:
        return None
    peak = float(x.abs().max())  # NaN when any value is NaN
    if not math.isfinite(peak):
        return "features contain NaN or infinite values"
    if peak > MAX_ABS_LOG_MEL:
        return f"absurd feature values: |log-mel| reaches {peak:.3g}, beyond {MAX_ABS_LOG_MEL:g}"
    return None


@functools.cache  # an lru_cache without a bound
def _mel_filters(n_mels: int, n_fft: int, device: torch.device) -> torch.Tensor:
    import librosa  # imported lazily: numba start-up costs a second

    fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=n_mels)  # (n_mels, n_fft//2+1)
    return torch.from_numpy(fb.astype(np.float32)).to(device)


def mel_filters(n_mels: int = N_MELS, device: torch.device | str = "cpu", n_fft: int = N_FFT) -> torch.Tensor:
    """Slaney mel filterbank (n_mels, n_fft//2+1), built once per (n_mels, n_fft, device). Do not modify."""
    return _mel_filters(n_mels, n_fft, torch.device(device))


@functools.cache  # an lru_cache without a bound
def _hann_window(n_fft: int, device: torch.device) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, device=device)  # (n_fft,), as librosa's


def num_frames(num_samples: int, hop_length: int = HOP_LENGTH) -> int:
    """Frames log_mel() gives for `num_samples` samples: 1 + N // hop (centred frames)."""
    return 1 + int(num_samples) // hop_length


def log_mel(waveform: np.ndarray | torch.Tensor, config: FeatureConfig = _DEFAULT) -> torch.Tensor:
    """(N,) or (B, N) waveform at 16 kHz -> float32 log-mel (T, n_mels) or (B, T, n_mels).

    Power spectrum of a centred, reflect-padded Hann STFT, Slaney mel filters, then the natural
    log of max(power, 1e-10). There is no fixed offset or scaling: CMVN (FeatureStats) does that.
    Runs on the tensor's device; a numpy input is computed on the CPU.
    """
    x = torch.as_tensor(waveform).to(torch.float32)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"log_mel expects a non-empty (N,) or (B, N) waveform, got shape {tuple(x.shape)}")
    n_fft, hop = config.n_fft, config.hop_length
    # Reflect padding needs more than n_fft // 2 samples; a shorter clip is zero-padded instead.
    pad_mode = "reflect" if x.shape[-1] > n_fft // 2 else "constant"
    spec = torch.stft(x, n_fft, hop_length=hop, window=_hann_window(n_fft, x.device), center=True,
                      pad_mode=pad_mode, return_complex=True)  # (..., n_fft//2+1, T) complex
    power = spec.real.square() + spec.imag.square()  # (..., n_fft//2+1, T)
    mel = mel_filters(config.n_mels, x.device, n_fft) @ power  # (..., n_mels, T)
    return mel.clamp(min=LOG_FLOOR).log().transpose(-1, -2).contiguous()  # (..., T, n_mels)


def _spans(starts_unit: torch.Tensor, widths_unit: torch.Tensor, max_width: torch.Tensor,
           extent: torch.Tensor, size: int) -> torch.Tensor:
    """Boolean (B, K, size) spans of width U[0, max_width] placed uniformly inside [0, extent).

    starts_unit, widths_unit: (B, K) uniform [0, 1) draws; max_width, extent: (B, 1) integers.
    """
    widths = torch.minimum((widths_unit * (max_width + 1)).floor(), max_width)  # (B, K)
    starts = (starts_unit * (extent - widths + 1)).floor()  # (B, K), start + width <= extent
    pos = torch.arange(size, device=widths.device, dtype=widths.dtype)  # (size,)
    return (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])  # (B, K, size)


def spec_augment(
    feats: torch.Tensor,
    config: FeatureConfig,
    generator: torch.Generator | None = None,
    lengths: torch.Tensor | list[int] | None = None,
) -> torch.Tensor:
    """SpecAugment frequency and time masks on normalised features (B, T, F) or (T, F), same shape.

    Masked cells are set to 0, the mean after CMVN: apply it after FeatureStats.normalize.
    Utterance b (real length lengths[b] frames, default T) gets min(time_masks, lengths[b] //
    frames_per_time_mask) time masks, each at most time_mask_width_frames wide and together at
    most time_mask_max_ratio of its length, all inside its first lengths[b] frames.
    Deterministic for a given generator state; random draws happen on the generator's device.
    """
    if feats.ndim == 2:  # (T, F): one utterance
        lens = None if lengths is None else torch.as_tensor(lengths).reshape(1)
        return spec_augment(feats[None], config, generator=generator, lengths=lens)[0]
    B, T, F = feats.shape
    device = generator.device if generator is not None else feats.device
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.long)
    lens = torch.as_tensor(lengths).to(device=device, dtype=torch.float32).clamp(max=T)[:, None]  # (B, 1)
    kf, kt = config.freq_masks, config.time_masks
    u = torch.rand(B, 2 * (kf + kt), generator=generator, device=device)  # (B, 2K) in [0, 1)
    mask = torch.zeros(B, T, F, dtype=torch.bool, device=device)
    if kf > 0:
        f_width = torch.full((B, 1), float(min(config.freq_mask_width, F)), device=device)
        f_extent = torch.full((B, 1), float(F), device=device)
        freq = _spans(u[:, :kf], u[:, kf:2 * kf], f_width, f_extent, F).any(dim=1)  # (B, F)
        mask |= freq[:, None, :]
    if kt > 0 and config.frames_per_time_mask > 0:
        n_masks = (lens // config.frames_per_time_mask).clamp(max=kt)  # (B, 1)
        budget = (config.time_mask_max_ratio * lens / n_masks.clamp(min=1)).floor()  # (B, 1)
        t_width = budget.clamp(max=config.time_mask_width_frames)  # (B, 1)
        spans = _spans(u[:, 2 * kf:2 * kf + kt], u[:, 2 * kf + kt:], t_width, lens, T)  # (B, kt, T)
        active = torch.arange(kt, device=device)[None, :] < n_masks  # (B, kt)
        time = (spans & active[..., None]).any(dim=1)  # (B, T)
        mask |= time[:, :, None]
    return feats.masked_fill(mask.to(feats.device), 0.0)


class StatsAccumulator:
    """Streaming per-bin count, sum and sum of squares in float64; .result() -> FeatureStats."""

    def __init__(self, n_mels: int = N_MELS):
        self.frames = 0
        self.sum = np.zeros(n_mels, dtype=np.float64)  # (F,)
        self.sumsq = np.zeros(n_mels, dtype=np.float64)  # (F,)

    def accumulate(self, feats: np.ndarray | torch.Tensor) -> None:
        """Add the frames of one (T, F) feature matrix."""
        if isinstance(feats, torch.Tensor):
            feats = feats.detach().cpu().numpy()
        x = np.asarray(feats, dtype=np.float64).reshape(-1, self.sum.shape[0])  # (T, F)
        problem = feature_problem(x)
        if problem is not None:  # one bad matrix would make every statistic NaN: refuse it whole
            raise ValueError(f"refusing to accumulate statistics: {problem}")
        self.frames += x.shape[0]
        self.sum += x.sum(axis=0)
        self.sumsq += np.square(x).sum(axis=0)

    def to_dict(self) -> dict:
        return {"frames": self.frames, "sum": self.sum.tolist(), "sumsq": self.sumsq.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> StatsAccumulator:
        acc = cls(len(d["sum"]))
        acc.frames = int(d["frames"])
        acc.sum[:] = d["sum"]
        acc.sumsq[:] = d["sumsq"]
        if acc.frames < 0 or not (np.isfinite(acc.sum).all() and np.isfinite(acc.sumsq).all()):
            raise ValueError("statistics with a negative frame count or non-finite sums")
        return acc

    def merge(self, other: StatsAccumulator) -> None:
        self.frames += other.frames
        self.sum += other.sum
        self.sumsq += other.sumsq

    def result(self) -> FeatureStats:
        if self.frames == 0:
            raise ValueError("no frames were accumulated: statistics of an empty set")
        mean = self.sum / self.frames
        var = np.maximum(self.sumsq / self.frames - np.square(mean), 0.0)
        return FeatureStats(mean=mean, std=np.sqrt(var), frames=self.frames)


@dataclass
class FeatureStats:
    """Per-bin mean and (population) std of log-mel features over `frames` frames: CMVN."""

    mean: np.ndarray | torch.Tensor  # (F,)
    std: np.ndarray | torch.Tensor  # (F,)
    frames: int

    def __post_init__(self):
        self.mean = np.asarray(torch.as_tensor(self.mean).cpu(), dtype=np.float64)  # (F,)
        self.std = np.asarray(torch.as_tensor(self.std).cpu(), dtype=np.float64)  # (F,)
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError(f"mean and std must both be (F,), got {self.mean.shape} and {self.std.shape}")
        # finite by construction: NaN statistics would silently turn every feature into NaN
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all()) or (self.std < 0).any():
            raise ValueError("feature statistics hold NaN, infinite or negative values")
        self.frames = int(self.frames)

    @staticmethod
    def accumulator(n_mels: int = N_MELS) -> StatsAccumulator:
        """A float64 streaming accumulator; feed it (T, F) matrices, then call .result()."""
        return StatsAccumulator(n_mels)

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        """(..., F) -> (..., F): (x - mean) / std on the features' device and dtype."""
        mean = torch.as_tensor(self.mean, dtype=feats.dtype, device=feats.device)  # (F,)
        std = torch.as_tensor(np.maximum(self.std, MIN_STD), dtype=feats.dtype, device=feats.device)
        return (feats - mean) / std

    def to_dict(self) -> dict:
        """JSON-safe: {"mean": [F floats], "std": [F floats], "frames": int}."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "frames": self.frames}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureStats:
        return cls(mean=np.asarray(d["mean"]), std=np.asarray(d["std"]), frames=d["frames"])

    @classmethod
    def merged(cls, stats: list[FeatureStats]) -> FeatureStats:
        """Frame-weighted pooling: the statistics of all their frames taken together."""
        if not stats:
            raise ValueError("FeatureStats.merged needs at least one FeatureStats")
        frames = np.array([s.frames for s in stats], dtype=np.float64)  # (S,)
        if frames.sum() == 0:
            raise ValueError("FeatureStats.merged: every input has 0 frames")
        w = frames[:, None] / frames.sum()  # (S, 1)
        means = np.stack([s.mean for s in stats])  # (S, F)
        second = np.stack([np.square(s.std) + np.square(s.mean) for s in stats])  # (S, F) E[x^2]
        mean = (w * means).sum(axis=0)  # (F,)
        var = np.maximum((w * second).sum(axis=0) - np.square(mean), 0.0)  # (F,)
        return cls(mean=mean, std=np.sqrt(var), frames=int(frames.sum()))
