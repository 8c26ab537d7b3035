"""Decode speed of the two audio decoders, libsndfile (soundfile) and FFmpeg (PyAV), per format.

Usage:
    .venv/bin/python scripts/bench_decode.py [--repeats 3] [--long-seconds 600] [--short 50]
                                             [--formats mp3,wav,flac,aiff] [--json out.json]

Writes one long file and `--short` 5-second clips (48 kHz, the rate of Common Voice's MP3s)
per format into a temporary folder, decodes every file to mono float32 with each decoder
(asr.audio_io, resampling left out: it is the same for both) and prints the median of
`--repeats` runs as x real time on one core, with the CPU model. The format table
AUDIO_EXTENSIONS in asr/audio_io.py names the faster decoder per format from these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import machine_description  # noqa: E402 - scripts/ is on sys.path

from asr.audio_io import PyAVDecoder, SoundfileDecoder  # noqa: E402

RATE = 48000  # Hz
SHORT_SECONDS = 5.0
BLOCK_SECONDS = 10.0
OGG_MAX_SECONDS = 20  # libsndfile 1.2 crashed writing 120 s of Ogg Vorbis in one call here
SOUNDFILE_FORMATS = {"mp3": "MP3", "wav": "WAV", "flac": "FLAC", "aiff": "AIFF", "ogg": "OGG"}


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """(N,) float32: tone bursts with noise, so encoders have something to code."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.2 * np.sin(2 * np.pi * (180 + 40 * seed % 200) * t) * ((t % 1.0) < 0.6)
    return (x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write(path: Path, samples: np.ndarray, fmt: str) -> None:
    if fmt == "ogg":  # libsndfile 1.2's Vorbis writer crashes on pieces and on long files
        sf.write(path, samples[:OGG_MAX_SECONDS * RATE], RATE, format="OGG")
        return
    with sf.SoundFile(path, "w", RATE, 1, format=SOUNDFILE_FORMATS[fmt]) as f:
        for i in range(0, len(samples), 60 * RATE):  # a minute at a time
            f.write(samples[i:i + 60 * RATE])


def decode_all(decoder, paths: list[Path]) -> int:
    frames = 0
    for p in paths:
        with decoder(p) as dec:
            for block in dec.blocks(int(BLOCK_SECONDS * dec.sample_rate)):
                frames += len(block)
    return frames


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per figure (median shown)")
    ap.add_argument("--long-seconds", type=float, default=600.0, help="length of the long file")
    ap.add_argument("--short", type=int, default=50, help="number of 5-second clips")
    ap.add_argument("--formats", default="mp3,wav,flac,aiff",
                    help=f"comma-separated, from {','.join(SOUNDFILE_FORMATS)}")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    machine = machine_description(threads=1)
    results = {"machine": machine, "repeats": args.repeats, "figures": []}
    print(f"CPU: {machine['cpu']}, {machine['cores']} cores, load average "
          f"{machine['load_average_start'][0]:.1f}; one thread; median of {args.repeats} runs; "
          "x real time")
    print(f"{'format':<6} {'files':<18} {'soundfile':>10} {'pyav':>10} {'faster':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats.split(","):
            long_path = Path(tmp) / f"long.{fmt}"
            long_seconds = min(args.long_seconds, OGG_MAX_SECONDS) if fmt == "ogg" else args.long_seconds
            write(long_path, speech_like(long_seconds, 0), fmt)
            shorts = [Path(tmp) / f"short{i}.{fmt}" for i in range(args.short)]
            for i, p in enumerate(shorts):
                write(p, speech_like(SHORT_SECONDS, i + 1), fmt)
            for label, paths, seconds in ((f"1 x {long_seconds:g} s", [long_path], long_seconds),
                                          (f"{args.short} x {SHORT_SECONDS:g} s", shorts,
                                           args.short * SHORT_SECONDS)):
                speed = {}
                for name, decoder in (("soundfile", SoundfileDecoder), ("pyav", PyAVDecoder)):
                    decode_all(decoder, paths[:2])  # warm the page cache and the libraries
                    times = []
                    for _ in range(args.repeats):
                        t0 = time.perf_counter()
                        decode_all(decoder, paths)
                        times.append(time.perf_counter() - t0)
                    speed[name] = seconds / statistics.median(times)
                best = max(speed, key=speed.get)
                print(f"{fmt:<6} {label:<18} {speed['soundfile']:>10.0f} {speed['pyav']:>10.0f} {best:>10}")
                results["figures"].append({"format": fmt, "files": label, **speed})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
