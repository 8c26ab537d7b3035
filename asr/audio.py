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


def _check_file(path: str | os.PathLike) -> bytes:
    """Raise AudioError unless `path` is a non-empty file this process may read; returns its
    first bytes (to say what a file that does not decode looks like)."""
    if not os.path.exists(path):
        raise AudioError(path, "no such file")
    if os.path.isdir(path):
        raise AudioError(path, "is a directory, not an audio file")
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except PermissionError:
        raise AudioError(path, "permission denied: the file cannot be opened for reading") from None
    except OSError as e:
        raise AudioError(path, f"cannot open the file ({e.strerror})") from None
    if not head:
        raise AudioError(path, "empty file (0 bytes)")
    return head


def _undecodable(path: str | os.PathLike, head: bytes, error: Exception) -> AudioError:
    """The AudioError for a file libsndfile will not open, saying what the file looks like."""
    if _looks_like_text(head):
        return AudioError(path, "a text file, not audio")
    detail = str(error).rpartition("': ")[2].strip() or str(error)
    if "does not exist" in detail:  # libsndfile's words for any format it cannot recognise
        detail = "no audio format recognised"
    return AudioError(path, f"not a readable audio file: unknown format, or corrupt or truncated "
                            f"data ({detail})")


def _looks_like_text(head: bytes) -> bool:
    for cut in range(4):  # the 64 bytes may end inside a multi-byte character
        try:
            text = head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return all(c.isprintable() or c.isspace() for c in text)
    return False


def check_complete(path: str | os.PathLike, decoded: int, declared: int, sample_rate: int) -> None:
    """Raise AudioError when fewer frames decoded than the header declares (a truncated MP3).

    A 50 ms or 1% shortfall is tolerated; formats whose length is unknown are not checked.
    """
    if not 0 < declared < 2**62:
        return
    if declared - decoded > max(sample_rate // 20, declared // 100):
        raise AudioError(path, f"truncated or damaged: the header declares "
                               f"{declared / sample_rate:.2f} s, only {decoded / sample_rate:.2f} s "
                               "decode")


def audio_info(path: str | os.PathLike) -> tuple[float, int]:
    """(duration in seconds, sample rate) from the file header, without decoding the samples."""
    head = _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise _undecodable(path, head, e) from None
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
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode `path` (or a window of it) to a mono float32 waveform (N,) at `sample_rate`.

    Audio longer than `max_seconds` is refused before any of it is decoded.
    """
    head = _check_file(path)
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise _undecodable(path, head, e) from None
    try:
        with f:
            sr = f.samplerate
            start = int(start_seconds * sr)
            declared = f.frames - start  # frames the header promises from `start` on
            if duration_seconds is not None:
                declared = min(declared, int(round(duration_seconds * sr)))
            if max_seconds is not None and declared > max_seconds * sr:
                raise AudioError(path, f"{declared / sr:.0f} s long, over the {max_seconds:g} s "
                                       "one utterance may last (split it, or use `asr transcribe`)")
            if start:
                f.seek(start)
            frames = -1 if duration_seconds is None else int(round(duration_seconds * sr))
            samples = f.read(frames, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"cannot decode audio ({e})") from None
    samples = to_mono(samples)
    if samples.size == 0:
        raise AudioError(path, "no audio samples")
    check_complete(path, len(samples), declared, sr)
    if not np.all(np.isfinite(samples)):
        raise AudioError(path, "audio contains NaN or infinite samples")
    return np.ascontiguousarray(resample(samples, sr, sample_rate), dtype=np.float32)
