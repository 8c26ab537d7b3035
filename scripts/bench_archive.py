"""`asr prepare` from a Common Voice archive against the extracted folder: speed and peak disk.

Usage:
    .venv/bin/python scripts/bench_archive.py [--hours 1.0] [--subset-hours 0.25] [--workers 1]
                                              [--work bench/tmp/archive] [--json out.json]

Writes a release of `--hours` of 4.5-second MP3 clips at 48 kHz (Common Voice's format; tones
and noise, a fifth of them unlisted "other" clips) as a folder and as the .tar.gz Mozilla ships
(TSVs first), then times, for the whole pool and for a `--subset-hours` subset:
    folder:  extract the archive (tarfile; timed apart), then manifests and feature caches
             from the extracted folder (build_cache)
    archive: manifests and feature caches in one streaming pass (data_prep.cv_archive)
Wall and CPU seconds (extraction not included), and the peak bytes on disk of each route's
outputs (sampled every 50 ms: extracted release + data for the folder; data, staged TSVs and
the clip spool for the archive; the downloaded archive itself is not counted).
Torch runs one thread; the CPU model is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import threading
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import machine_description  # noqa: E402 - scripts/ is on sys.path

from asr.feature_cache import build_cache  # noqa: E402
from data_prep.release import prepare_manifests  # noqa: E402

CLIP_SECONDS = 4.5
RATE = 48000  # Hz
VERSION = "cv-corpus-1.0-bench"
WORDS = "alpha bravo delta echo golf hotel india kilo lima mike oscar papa romeo sierra tango".split()


def write_release(root: Path, hours: float) -> None:
    """root/de/{clips/*.mp3, train/dev/test/validated/other.tsv}: 80% train, 10% dev, 10% test
    of the listed clips, and a quarter as many unlisted ones (other.tsv)."""
    n = int(hours * 3600 / CLIP_SECONDS)
    clips = root / "de" / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(CLIP_SECONDS * RATE)) / RATE
    rows: dict[str, list[str]] = {"train": [], "dev": [], "test": [], "other": []}
    for i in range(n + n // 4):
        name = f"common_voice_de_{i:07d}.mp3"
        x = 0.2 * np.sin(2 * np.pi * (150 + i % 300) * t) * ((t % 1.0) < 0.6)
        sf.write(clips / name, (x + 0.01 * rng.standard_normal(len(t))).astype(np.float32), RATE,
                 format="MP3")
        split = "other" if i >= n else ("dev" if i % 10 == 8 else "test" if i % 10 == 9 else "train")
        speaker = f"{split}-{i % 40}"
        sentence = " ".join(WORDS[(i // 15 ** k) % 15] for k in range(4)) + f" {WORDS[i % 7]}"
        rows[split].append(f"{speaker}\t{name}\t{sentence}")
    header = "client_id\tpath\tsentence"
    for split, lines in rows.items():
        (root / "de" / f"{split}.tsv").write_text("\n".join([header, *lines]) + "\n")
    validated = rows["train"] + rows["dev"] + rows["test"]
    (root / "de" / "validated.tsv").write_text("\n".join([header, *validated]) + "\n")


def pack(root: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for f in sorted((root / "de").glob("*.tsv")):
            tar.add(f, arcname=f"{VERSION}/de/{f.name}")
        for f in sorted((root / "de" / "clips").iterdir()):
            tar.add(f, arcname=f"{VERSION}/de/clips/{f.name}")


def disk_bytes(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        for dirpath, _, files in os.walk(p):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except FileNotFoundError:
                    pass
    return total


class PeakDisk:
    """Samples the bytes under `paths` every 50 ms while the block runs."""

    def __init__(self, paths: list[Path]):
        self.paths, self.peak_bytes, self._stop = paths, 0, threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_bytes = max(self.peak_bytes, disk_bytes(self.paths))

    def __enter__(self) -> PeakDisk:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, disk_bytes(self.paths))


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def folder_route(work: Path, archive: Path, hours: float | None, workers: int) -> dict:
    extracted, data = work / "extracted", work / "data_folder"
    for p in (extracted, data):
        shutil.rmtree(p, ignore_errors=True)

    def extract():
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(extracted, filter="data")

    def run():
        prepare_manifests(extracted / VERSION, ["de"], data, hours={"de": hours} if hours else None,
                          progress=False)
        for split in ("train", "dev", "test"):
            build_cache(data / "de" / f"{split}.jsonl", data / "de" / "feats" / split,
                        workers=workers, progress=False)

    with PeakDisk([extracted, data]) as disk:
        extract_wall, _ = timed(extract)
        wall, cpu = timed(run)
    return {"extract_seconds": extract_wall, "wall_seconds": wall, "cpu_seconds": cpu,
            "peak_disk_bytes": disk.peak_bytes,
            "features_bytes": disk_bytes([data / "de" / "feats"])}


def archive_route(work: Path, archive: Path, hours: float | None, workers: int) -> dict:
    data = work / "data_archive"
    shutil.rmtree(data, ignore_errors=True)
    result = {}

    def run():
        result.update(prepare_manifests([archive], ["de"], data, hours={"de": hours} if hours else None,
                                        progress=False, workers=workers))

    with PeakDisk([data]) as disk:
        wall, cpu = timed(run)
    return {"wall_seconds": wall, "cpu_seconds": cpu, "peak_disk_bytes": disk.peak_bytes,
            "features_bytes": disk_bytes([data / "de" / "feats"]),
            "spool_peak_bytes": result["locales"]["de"]["archive"]["spool_peak_bytes"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--hours", type=float, default=1.0, help="listed audio in the release")
    ap.add_argument("--subset-hours", type=float, default=0.25, help="training hours of the subset run")
    ap.add_argument("--workers", type=int, default=1, help="feature processes, both routes")
    ap.add_argument("--work", type=Path, default=Path("bench/tmp/archive"), help="scratch folder")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    release, archive = args.work / "release", args.work / f"{VERSION}-de.tar.gz"
    if not archive.exists():
        write_release(release, args.hours)
        pack(release, archive)
    machine = machine_description(threads=1)
    results = {"machine": machine, "workers": args.workers, "hours": args.hours,
               "archive_bytes": archive.stat().st_size,
               "release_bytes": disk_bytes([release / "de"]), "runs": []}
    print(f"CPU: {machine['cpu']}, {machine['cores']} cores, load average "
          f"{machine['load_average_start'][0]:.1f}; {args.workers} feature worker(s), torch 1 thread; release "
          f"{args.hours:g} h listed, archive {results['archive_bytes'] / 2**20:.1f} MB")
    print(f"{'subset':<8} {'route':<8} {'extract s':>9} {'wall s':>8} {'cpu s':>8} {'peak disk MB':>13} "
          f"{'features MB':>12}")
    for hours in (None, args.subset_hours):
        for route, fn in (("folder", folder_route), ("archive", archive_route)):
            r = fn(args.work, archive, hours, args.workers)
            results["runs"].append({"subset_hours": hours, "route": route, **r})
            extract = f"{r['extract_seconds']:.1f}" if "extract_seconds" in r else "-"
            print(f"{'all' if hours is None else f'{hours:g} h':<8} {route:<8} {extract:>9} {r['wall_seconds']:>8.1f} "
                  f"{r['cpu_seconds']:>8.1f} {r['peak_disk_bytes'] / 2**20:>13.1f} "
                  f"{r['features_bytes'] / 2**20:>12.1f}"
                  + (f"  (spool peak {r['spool_peak_bytes'] / 2**20:.1f} MB)" if "spool_peak_bytes" in r else ""))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
