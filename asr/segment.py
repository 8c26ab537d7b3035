"""Long recordings in bounded memory: stream a file in blocks and cut it at pauses.

    file ─► stream_audio: mono float32 16 kHz blocks (asr.audio_io decoders, soxr streaming resampler)
         ─► split_at_pauses: segments of at most `max_seconds`, each cut at the quietest
            stretch of its second half (an energy-based pause finder; no VAD model to download)

Memory is one block plus one segment, whatever the file's length. A file shorter than
`max_seconds` is one segment, so a folder of short clips costs no splitting at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.audio_io import AudioError, AudioSource, check_complete, check_finite, open_decoder

BLOCK_SECONDS = 10.0  # audio read and resampled at a time
MAX_SEGMENT_SECONDS = 20.0  # longest segment given to the model (attention cost grows as T^2)
PAUSE_WINDOW_SECONDS = 0.3  # the stretch whose energy decides where a pause is
ENERGY_FRAME = SAMPLE_RATE // 100  # 160 samples: energy is measured per 10 ms


@dataclass(frozen=True)
class AudioSegment:
    """A stretch of a recording: `samples` (N,) float32 at 16 kHz starting at `start_seconds`."""

    start_seconds: float
    samples: np.ndarray

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def end_seconds(self) -> float:
        return self.start_seconds + self.duration_seconds


def stream_audio(path: AudioSource, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Decode `path` block by block -> mono float32 (n,) arrays at 16 kHz.

    Any container either decoder reads (asr.audio_io), any channel count averaged to mono,
    any sample rate resampled with soxr's streaming resampler, which carries its filter state
    across blocks (no seams at block edges). Raises AudioError naming the file for
    unreadable, empty, truncated or non-finite audio.
    """
    with open_decoder(path) as dec:
        sr = dec.sample_rate
        resampler = None
        if sr != SAMPLE_RATE:
            import soxr  # librosa's resampling backend, installed with it

            resampler = soxr.ResampleStream(sr, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        block = max(1, int(block_seconds * sr))
        total = 0
        for mono in dec.blocks(block):
            last = len(mono) < block
            check_finite(path, mono)
            total += len(mono)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            if len(mono):
                yield mono
            if last:
                break
        if total == 0:
            raise AudioError(path, "no audio samples")
        check_complete(path, total, dec.declared_frames, sr)


def frame_energy_db(samples: np.ndarray) -> np.ndarray:
    """(N,) -> (N // 160,) mean power per 10 ms frame in dB (floor -100 dB)."""
    n = len(samples) // ENERGY_FRAME
    frames = samples[: n * ENERGY_FRAME].reshape(n, ENERGY_FRAME)  # (n, 160)
    return 10.0 * np.log10(np.maximum(np.square(frames).mean(axis=1), 1e-10))


def quietest_cut(samples: np.ndarray, lo: int, hi: int) -> int:
    """Sample index in [lo, hi) at the centre of the quietest PAUSE_WINDOW_SECONDS stretch."""
    energy = frame_energy_db(samples[:hi])  # (F,)
    width = max(1, int(PAUSE_WINDOW_SECONDS * 100))  # frames
    if len(energy) < width:
        return hi
    smooth = np.convolve(energy, np.ones(width) / width, mode="valid")  # (F - width + 1,)
    first = lo // ENERGY_FRAME
    if first >= len(smooth):
        return hi
    # the latest of the quietest windows: segments stay long, so fewer cuts in all
    window = smooth[first:]
    best = len(window) - 1 - int(np.argmin(window[::-1]))
    centre = (first + best + width // 2) * ENERGY_FRAME
    return int(min(max(centre, lo), hi))


def split_at_pauses(blocks: Iterator[np.ndarray], max_seconds: float = MAX_SEGMENT_SECONDS
                    ) -> Iterator[AudioSegment]:
    """16 kHz blocks -> consecutive segments covering all samples, each at most `max_seconds`.

    A segment is cut when the buffer holds `max_seconds`, at the quietest stretch of its second
    half, so cuts fall in pauses when there are any and speech is never cut more than needed.
    """
    max_samples = int(max_seconds * SAMPLE_RATE)
    if max_samples < 2 * SAMPLE_RATE * PAUSE_WINDOW_SECONDS:
        raise ValueError(f"max_seconds must be at least {2 * PAUSE_WINDOW_SECONDS} s, got {max_seconds}")
    buffer = np.zeros(0, dtype=np.float32)
    start = 0  # samples emitted so far
    for block in blocks:
        buffer = np.concatenate([buffer, block]) if len(buffer) else block
        while len(buffer) >= max_samples:
            cut = quietest_cut(buffer, max_samples // 2, max_samples)
            yield AudioSegment(start / SAMPLE_RATE, buffer[:cut].copy())
            start += cut
            buffer = buffer[cut:]
    if len(buffer):
        yield AudioSegment(start / SAMPLE_RATE, buffer.copy())


def segment_file(path: AudioSource, max_seconds: float = MAX_SEGMENT_SECONDS) -> Iterator[AudioSegment]:
    """Segments of the file at `path`, streamed (see module docstring)."""
    return split_at_pauses(stream_audio(path), max_seconds=max_seconds)


def segment_waveform(samples: np.ndarray, max_seconds: float = MAX_SEGMENT_SECONDS) -> Iterator[AudioSegment]:
    """Segments of an in-memory mono 16 kHz waveform (N,)."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.ndim != 1 or not len(samples):
        raise ValueError(f"expected a non-empty mono waveform (N,), got shape {samples.shape}")
    check_finite("<waveform>", samples)  # AudioError: a Failure for this source, not ""
    return split_at_pauses(iter([samples]), max_seconds=max_seconds)
