"""Opening audio containers: the format table and two decoders, libsndfile and FFmpeg.

    source (path, or AudioBytes held in memory) ─► open_decoder ─► Decoder
        .sample_rate, .declared_frames   from the header, nothing decoded yet
        .blocks(n)                       mono float32 (n,) blocks at the file's own rate

`soundfile` (libsndfile) decodes the formats it reads where it measured faster, and PyAV
(FFmpeg's libraries, bundled in its wheels: no system ffmpeg, no subprocess) everything else:
AAC in m4a/mp4/mov, Opus and Vorbis in webm/mkv/ogg, WMA, AMR, AC-3 and whatever FFmpeg reads.
`AUDIO_EXTENSIONS` says which decoder an extension gets (scripts/bench_decode.py measured
both). A file is never judged by its name alone: one that its first decoder cannot open is
tried with the other before it is called unreadable, so a misnamed file still decodes.

Every failure is an AudioError naming the file and the problem in the words audio.py has
always used, whichever decoder met it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from asr.fileio import special_file_kind

SOUNDFILE, PYAV = "soundfile", "pyav"
# extension -> first decoder. libsndfile measured faster on every format both read
# (scripts/bench_decode.py, AMD EPYC, one thread, x real time, libsndfile vs PyAV): mp3
# 1080 vs 650 (one 600 s file) and 1298 vs 641 (5 s clips); wav 2638 vs 1465 and 2289 vs
# 163 (PyAV's per-file probing); flac 893 vs 633; aiff 2151 vs 1054; ogg 680 vs 346.
AUDIO_EXTENSIONS: dict[str, str] = {
    **dict.fromkeys((".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".aif", ".aiff",
                     ".aifc", ".au", ".snd", ".caf", ".w64", ".rf64", ".voc", ".sd2", ".ircam",
                     ".sf", ".htk", ".svx", ".paf", ".pvf", ".xi", ".avr", ".mat", ".wve"),
                    SOUNDFILE),
    **dict.fromkeys((".m4a", ".m4b", ".aac", ".mp4", ".m4v", ".mov", ".3gp", ".3g2", ".webm",
                     ".mkv", ".mka", ".wma", ".wmv", ".asf", ".amr", ".ac3", ".eac3", ".mp2",
                     ".mpga", ".wv", ".ape", ".spx", ".tta", ".dts", ".avi", ".flv", ".ts",
                     ".mpg", ".mpeg", ".ogv", ".oggm"), PYAV),
}
# demuxers of bare codec streams: their length is estimated from the bit rate, not declared,
# so a shortfall against it says nothing about truncation
_ESTIMATED_LENGTH = {"aac", "mp3", "ac3", "eac3", "amr", "dts", "mp2", "mpegts", "mpeg"}
# Largest |sample| taken as audio: decoders give full scale as ±1.0, and a float file may go
# somewhat past it (gain applied after mixing), but 100 (+40 dB over full scale) is no
# recording: a mis-scaled or corrupt float file. Samples near 1e30 overflow the float32
# power spectrum to inf, and one such clip turns a whole corpus's CMVN statistics into NaN.
MAX_SAMPLE_MAGNITUDE = 100.0  # full scale = 1.0


class AudioError(Exception):
    """An audio file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioBytes:
    """An audio file held in memory (say, an archive member): its `name` is what errors show."""

    name: str
    data: bytes

    def __str__(self) -> str:
        return self.name


AudioSource = str | os.PathLike | AudioBytes


def check_file(source: AudioSource) -> bytes:
    """Raise AudioError unless `source` is a non-empty file this process may read; returns its
    first bytes (to say what a file that does not decode looks like)."""
    if isinstance(source, AudioBytes):
        if not source.data:
            raise AudioError(source, "empty file (0 bytes)")
        return source.data[:64]
    if not os.path.exists(source):
        raise AudioError(source, "no such file")
    if os.path.isdir(source):
        raise AudioError(source, "is a directory, not an audio file")
    kind = special_file_kind(source)  # before open(): a FIFO would block it forever
    if kind is not None:
        raise AudioError(source, f"{kind}, not an audio file: refusing to open it")
    try:
        with open(source, "rb") as f:
            head = f.read(64)
    except PermissionError:
        raise AudioError(source, "permission denied: the file cannot be opened for reading") from None
    except OSError as e:
        raise AudioError(source, f"cannot open the file ({e.strerror})") from None
    if not head:
        raise AudioError(source, "empty file (0 bytes)")
    return head


def undecodable(source: AudioSource, head: bytes, error: Exception) -> AudioError:
    """The AudioError for a file no decoder will open, saying what the file looks like."""
    if looks_like_text(head):
        return AudioError(source, "a text file, not audio")
    detail = getattr(error, "strerror", None) if not isinstance(error, sf.LibsndfileError) else None
    detail = detail or str(error).rpartition("': ")[2].strip() or str(error)
    if "does not exist" in detail or "Invalid data found" in detail:  # the libraries' words
        detail = "no audio format recognised"  # for any format they cannot recognise
    return AudioError(source, f"not a readable audio file: unknown format, or corrupt or truncated "
                              f"data ({detail})")


def looks_like_text(head: bytes) -> bool:
    for cut in range(4):  # the 64 bytes may end inside a multi-byte character
        try:
            text = head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return all(c.isprintable() or c.isspace() for c in text)
    return False


def check_complete(path: AudioSource, decoded: int, declared: int, sample_rate: int) -> None:
    """Raise AudioError when fewer frames decoded than the header declares (a truncated file).

    A 50 ms or 1% shortfall is tolerated; formats whose length is unknown are not checked.
    """
    if not 0 < declared < 2**62:
        return
    if declared - decoded > max(sample_rate // 20, declared // 100):
        raise AudioError(path, f"truncated or damaged: the header declares "
                               f"{declared / sample_rate:.2f} s, only {decoded / sample_rate:.2f} s "
                               "decode")


def check_finite(source: AudioSource, mono: np.ndarray) -> None:
    """Raise AudioError for NaN or infinite samples, or any beyond MAX_SAMPLE_MAGNITUDE."""
    if not len(mono):
        return
    peak = max(float(mono.max()), -float(mono.min()))  # NaN when any sample is NaN; no copy
    if not np.isfinite(peak):
        raise AudioError(source, "audio contains NaN or infinite samples")
    if peak > MAX_SAMPLE_MAGNITUDE:
        raise AudioError(source, f"absurd sample values: |x| reaches {peak:.3g}, beyond the "
                                 f"{MAX_SAMPLE_MAGNITUDE:g} allowed (full scale is 1.0); the "
                                 "file is mis-scaled or corrupt")


class Decoder:
    """An opened audio file: header facts now, mono blocks on demand. Use with `with`."""

    source: AudioSource
    sample_rate: int  # Hz, the file's own
    declared_frames: int  # samples per channel the header promises; -1 when it does not say

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        """Mono float32 blocks (n,) of `block_frames` samples (the last one shorter)."""
        raise NotImplementedError

    def skip(self, frames: int) -> None:
        """Move the read position `frames` samples on from the start."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SoundfileDecoder(Decoder):
    def __init__(self, source: AudioSource):
        self.source = source
        target = io.BytesIO(source.data) if isinstance(source, AudioBytes) else str(source)
        self._file = sf.SoundFile(target)  # raises LibsndfileError for what it cannot open
        self.sample_rate = self._file.samplerate
        self.declared_frames = self._file.frames

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        done = 0
        while True:
            try:
                data = self._file.read(block_frames, dtype="float32", always_2d=True)  # (n, C)
            except (sf.LibsndfileError, RuntimeError) as e:
                raise AudioError(self.source, f"cannot decode audio after "
                                              f"{done / self.sample_rate:.1f} s ({e})") from None
            done += len(data)
            yield np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)  # (n,)
            if len(data) < block_frames:
                return

    def skip(self, frames: int) -> None:
        if frames:
            self._file.seek(frames)

    def close(self) -> None:
        self._file.close()


class PyAVDecoder(Decoder):
    def __init__(self, source: AudioSource):
        import av  # imported when first needed: most runs read only MP3 clips

        self._av = av
        self.source = source
        target = io.BytesIO(source.data) if isinstance(source, AudioBytes) else str(source)
        self._container = av.open(target, metadata_errors="ignore")  # raises av.FFmpegError
        try:
            if not self._container.streams.audio:
                raise AudioError(source, "no audio track in the file (a video without sound?)")
            self._stream = self._container.streams.audio[0]
            self.sample_rate = int(self._stream.codec_context.sample_rate or self._stream.rate or 0)
            if self.sample_rate <= 0:
                raise AudioError(source, "audio header has no valid sample rate or length")
            self.declared_frames = self._declared_frames()
        except BaseException:
            self._container.close()
            raise
        self._skip = 0

    def _declared_frames(self) -> int:
        if self._container.format.name in _ESTIMATED_LENGTH:
            return -1
        stream = self._stream
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif self._container.duration:
            seconds = self._container.duration / 1_000_000  # AV_TIME_BASE: microseconds
        else:
            return -1
        return int(round(seconds * self.sample_rate))

    def _frames(self) -> Iterator[np.ndarray]:
        """Decoded frames as mono float32 (n,), in file order."""
        done = 0
        try:
            for frame in self._container.decode(self._stream):
                if frame.sample_rate != self.sample_rate:
                    raise AudioError(self.source, f"sample rate changes from {self.sample_rate} Hz "
                                                  f"to {frame.sample_rate} Hz mid-stream")
                mono = _to_mono_float(frame.to_ndarray(), frame.format.is_planar,
                                      frame.layout.nb_channels)
                done += len(mono)
                yield mono
        except self._av.FFmpegError as e:
            raise AudioError(self.source, f"cannot decode audio after {done / self.sample_rate:.1f} s "
                                          f"({getattr(e, 'strerror', None) or e})") from None

    def blocks(self, block_frames: int) -> Iterator[np.ndarray]:
        pending, held, skip = [], 0, self._skip
        for mono in self._frames():
            if skip:  # no seeking: FFmpeg seeks to packets, so decode and drop up to the start
                cut = min(skip, len(mono))
                mono, skip = mono[cut:], skip - cut
            pending.append(mono)
            held += len(mono)
            while held >= block_frames:
                data = np.concatenate(pending)
                yield data[:block_frames]
                pending, held = [data[block_frames:]], held - block_frames
        yield np.concatenate(pending) if pending else np.zeros(0, np.float32)

    def skip(self, frames: int) -> None:
        self._skip = frames

    def close(self) -> None:
        self._container.close()


_SCALE = {np.dtype(np.int16): 1 / 2**15, np.dtype(np.int32): 1 / 2**31}


def _to_mono_float(data: np.ndarray, planar: bool, channels: int) -> np.ndarray:
    """A decoded frame, (C, n) planar or (1, n * C) interleaved, any sample type -> (n,) float32."""
    frames = data if planar else data.reshape(-1, channels).T  # (C, n)
    if frames.dtype == np.uint8:
        frames = (frames.astype(np.float32) - 128.0) / 128.0
    elif frames.dtype in _SCALE:
        frames = frames.astype(np.float32) * _SCALE[frames.dtype]
    mono = frames[0] if channels == 1 else frames.mean(axis=0)
    return np.ascontiguousarray(mono, dtype=np.float32)


_DECODERS = {SOUNDFILE: SoundfileDecoder, PYAV: PyAVDecoder}


def decoder_order(source: AudioSource) -> tuple[str, str]:
    """The decoders to try for `source`, the faster one for its extension first."""
    first = AUDIO_EXTENSIONS.get(os.path.splitext(str(source))[1].lower(), SOUNDFILE)
    return (first, PYAV if first == SOUNDFILE else SOUNDFILE)


def open_decoder(source: AudioSource) -> Decoder:
    """Open `source` with the first decoder that reads it; AudioError naming it otherwise."""
    head = check_file(source)
    first_error: Exception | None = None
    for name in decoder_order(source):
        try:
            return _DECODERS[name](source)
        except AudioError:
            raise
        except Exception as e:  # noqa: BLE001 - each library has its own error types
            if not _open_failure(e):
                raise
            first_error = first_error or e
    raise undecodable(source, head, first_error)


def _open_failure(error: Exception) -> bool:
    if isinstance(error, (sf.LibsndfileError, RuntimeError, EOFError)):
        return True
    import av

    return isinstance(error, av.FFmpegError)
