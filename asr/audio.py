"""Audio loading: any file soundfile reads (mp3, wav, flac, ogg) -> mono float32 at 16 kHz."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000  # Hz, what every model and feature here expects


class AudioError(Exception):
    """An audio file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _check_file(path: str | os.PathLike) -> None:
    if not os.path.exists(path):
        raise AudioError(path, "no such file")
    if os.path.isdir(path):
        raise AudioError(path, "is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioError(path, "empty file (0 bytes)")


def audio_info(path: str | os.PathLike) -> tuple[float, int]:
    """(duration in seconds, sample rate) from the file header, without decoding the samples."""
    _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"cannot read audio header ({e})") from None
    if info.samplerate <= 0 or info.frames < 0:
        raise AudioError(path, "audio header has no valid sample rate or length")
    return info.frames / info.samplerate, info.samplerate


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(N,) or (N, C) -> (N,) by averaging channels."""
    return samples if samples.ndim == 1 else samples.mean(axis=1)


def resample(samples: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    if orig_sr == target_sr:
        return samples
    import librosa  # imported lazily: numba start-up costs a second

    return librosa.resample(samples, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = SAMPLE_RATE,
    start_seconds: float = 0.0,
    duration_seconds: float | None = None,
) -> np.ndarray:
    """Decode `path` (or a window of it) to a mono float32 waveform (N,) at `sample_rate`."""
    _check_file(path)
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            if start_seconds:
                f.seek(int(start_seconds * sr))
            frames = -1 if duration_seconds is None else int(round(duration_seconds * sr))
            samples = f.read(frames, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"cannot decode audio ({e})") from None
    samples = to_mono(samples)
    if samples.size == 0:
        raise AudioError(path, "no audio samples")
    if not np.all(np.isfinite(samples)):
        raise AudioError(path, "audio contains NaN or infinite samples")
    return np.ascontiguousarray(resample(samples, sr, sample_rate), dtype=np.float32)
