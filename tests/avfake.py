"""Audio in phone and video containers, written by the tests with PyAV's encoders.

    write_container(path, "m4a", samples, 44100)      # AAC in MPEG-4 audio (a voice memo)
    write_container(path, "mp4", samples, 48000, video=True)   # AAC beside a video track

CONTAINERS names each kind by the extension it is saved under: (FFmpeg muxer, audio codec,
the codec's sample format, extra encoder settings).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

CONTAINERS = {
    "m4a": ("ipod", "aac", "fltp", {}),
    "mp4": ("mp4", "aac", "fltp", {}),
    "mov": ("mov", "aac", "fltp", {}),
    "webm": ("webm", "libopus", "s16", {}),
    "mka": ("matroska", "libopus", "fltp", {}),
    "wma": ("asf", "wmav2", "fltp", {"bit_rate": 64000}),
    "aac": ("adts", "aac", "fltp", {}),
    "aiff": ("aiff", "pcm_s16be", "s16", {}),
}
FRAME_SAMPLES = 4096  # samples handed to the encoder at a time (PyAV refits codec frame sizes)


def tone(seconds: float, sr: int, channels: int = 1, hz: float = 440.0) -> np.ndarray:
    """(N, C) float32: a `hz` tone at amplitude 0.3 on every channel."""
    t = np.arange(int(round(seconds * sr))) / sr
    x = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)


def write_container(path: Path, kind: str, samples: np.ndarray, sr: int, video: bool = False) -> Path:
    """Encode (N, C) float32 `samples` at `sr` Hz into `path` as CONTAINERS[kind]; `video` adds
    a small video track (a recording from a phone camera)."""
    fmt, codec, sample_fmt, settings = CONTAINERS[kind]
    channels = samples.shape[1]
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=sr, layout=layout, **settings)
        picture = _video_stream(out) if video else None
        for i in range(0, len(samples), FRAME_SAMPLES):
            chunk = samples[i:i + FRAME_SAMPLES]  # (n, C)
            data = chunk.T if sample_fmt.endswith("p") else chunk.reshape(1, -1)
            if sample_fmt.startswith("s16"):
                data = (data * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=sample_fmt,
                                               layout=layout)
            frame.sample_rate = sr
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if picture is not None:
            _write_video(out, picture, seconds=len(samples) / sr)
    return path


def _video_stream(out):
    stream = out.add_stream("mpeg4", rate=5)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    return stream


def _write_video(out, stream, seconds: float) -> None:
    for i in range(max(1, int(seconds * 5))):
        img = np.full((32, 32, 3), (i * 20) % 255, dtype=np.uint8)
        out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
    out.mux(stream.encode(None))


def write_video_only(path: Path, seconds: float = 1.0) -> Path:
    """An mp4 with a video track and no sound."""
    with av.open(str(path), "w", format="mp4") as out:
        _write_video(out, _video_stream(out), seconds)
    return path
