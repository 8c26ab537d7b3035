"""Audio loading: any file soundfile or FFmpeg reads -> mono float32 at 16 kHz.

Which decoder reads which container, and the errors they share, live in `asr.audio_io`;
this module turns what they decode into the one waveform every model and feature expects.
"""

from __future__ import annotations

import os

import numpy as np

from asr.audio_io import (  # noqa: F401 - AudioError and AudioBytes are this module's API too
    AUDIO_EXTENSIONS,
    AudioBytes,
    AudioError,
    AudioSource,
    check_complete,
    check_finite,
    open_decoder,
)

SAMPLE_RATE = 16000  # Hz, what every model and feature here expects
_COUNT_BLOCK_SECONDS = 60.0  # decoded at a time when a header does not give the length


def audio_info(path: AudioSource) -> tuple[float, int]:
    """(duration in seconds, sample rate) from the file header, without decoding the samples.

    The few formats whose header gives no length (a bare AAC or AMR stream) are decoded and
    counted, in blocks."""
    with open_decoder(path) as dec:
        sr, frames = dec.sample_rate, dec.declared_frames
        if sr <= 0 or frames < -1:
            raise AudioError(path, "audio header has no valid sample rate or length")
        if frames == -1:
            frames = sum(len(b) for b in dec.blocks(int(_COUNT_BLOCK_SECONDS * sr)))
    return frames / sr, sr


def is_audio_file(path: str | os.PathLike) -> bool:
    """Whether a file name has an extension one of the decoders reads (see AUDIO_EXTENSIONS)."""
    return os.path.splitext(str(path))[1].lower() in AUDIO_EXTENSIONS


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(N,) or (N, C) -> (N,) by averaging channels."""
    return samples if samples.ndim == 1 else samples.mean(axis=1)


def resample(samples: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    if orig_sr == target_sr:
        return samples
    import librosa  # imported lazily: numba start-up costs a second

    return librosa.resample(samples, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")


def load_audio(
    path: AudioSource,
    sample_rate: int = SAMPLE_RATE,
    start_seconds: float = 0.0,
    duration_seconds: float | None = None,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode `path` (or a window of it) to a mono float32 waveform (N,) at `sample_rate`.

    Audio longer than `max_seconds` is refused before any of it is decoded when the header
    gives the length, and as soon as that much has decoded when it does not.
    """
    with open_decoder(path) as dec:
        sr = dec.sample_rate
        start = int(start_seconds * sr)
        declared = dec.declared_frames - start if dec.declared_frames >= 0 else -1
        wanted = None if duration_seconds is None else int(round(duration_seconds * sr))
        if wanted is not None:
            declared = min(declared, wanted) if declared >= 0 else wanted
        limit = None if max_seconds is None else int(max_seconds * sr)
        if limit is not None and declared > limit:
            raise AudioError(path, f"{declared / sr:.0f} s long, over the {max_seconds:g} s "
                                   "one utterance may last (split it, or use `asr transcribe`)")
        dec.skip(start)
        parts, total = [], 0
        # one read for a whole clip when its length is known (as fast as libsndfile goes)
        block = max(1, wanted or (declared if declared > 0 else int(10 * sr)))
        for data in dec.blocks(block):
            parts.append(data)
            total += len(data)
            if wanted is not None and total >= wanted:
                break
            if limit is not None and total > limit:
                raise AudioError(path, f"more than {total / sr:.0f} s long, over the "
                                       f"{max_seconds:g} s one utterance may last (split it, or "
                                       "use `asr transcribe`)")
    samples = np.concatenate(parts)[:wanted] if parts else np.zeros(0, np.float32)
    if samples.size == 0:
        raise AudioError(path, "no audio samples")
    check_complete(path, len(samples), declared, sr)
    check_finite(path, samples)
    return np.ascontiguousarray(resample(samples, sr, sample_rate), dtype=np.float32)
