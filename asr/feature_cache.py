"""Log-mel features computed once per manifest and served from float16 shards by memory map.

Layout of a cache directory:
    shard-00000.f16    flat float16 (sum of frames, n_mels), utterances back to back
    shard-00000.json   sidecar: the shard's utterances, bytes, crc32, statistics, build key
    ...
    index.json         written last: utterances {id, shard, offset, frames}, shards {file,
                       bytes, crc32}, feature config, key, CMVN statistics and a build summary

Every file is written atomically, so a build killed at any point leaves finished shards that a
rerun reuses; index.json exists only once every shard is done. The key hashes the manifest
bytes and the feature settings: a changed manifest or config rebuilds everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from asr.audio import SAMPLE_RATE, AudioError, AudioSource, load_audio
from asr.config import FeatureConfig
from asr.features import FeatureStats, StatsAccumulator, feature_problem, log_mel
from asr.fileio import atomic_write, is_live_temporary, read_jsonl, write_json
from asr.run_lock import FolderLock
from asr.workers import watch_parent

FORMAT_VERSION = 1
INDEX = "index.json"
DTYPE = np.float16  # 2 bytes a value: 80 mels x 100 frames/s -> 57.6 MB per hour of audio
_READ_CHUNK = 1 << 24  # bytes per read while checksumming
# Features are computed from the whole waveform at once (a 2-hour file would take GBs), and
# Common Voice clips last 10 s at most: a longer file is long-form audio for `asr transcribe`.
MAX_UTTERANCE_SECONDS = 300.0
MAX_N_MELS = 1024  # mel bins an index may claim; the shipped settings use 80


class FeatureCacheError(ValueError):
    """A cache directory that cannot be used; the message names it and says what to do."""


def _shard_name(i: int) -> str:
    return f"shard-{i:05d}"


def _feature_settings(config: FeatureConfig) -> dict:
    """The cache's identity as stored in its index ("config") and hashed into its key."""
    return config.identity() | {"sample_rate": SAMPLE_RATE, "dtype": "float16"}


def _cache_key(manifest_path: Path, settings: dict, shard_size: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT_VERSION, "features": settings,
                         "shard_size": shard_size}, sort_keys=True).encode())
    h.update(manifest_path.read_bytes())
    return h.hexdigest()[:32]


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(_READ_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def _size_ok(path: Path, expected: int) -> bool:
    return path.exists() and path.stat().st_size == expected


def utterance_features(source: AudioSource, config: FeatureConfig) -> tuple[np.ndarray, float]:
    """((T, F) float32 log-mel, audio seconds) of one utterance's audio; AudioError when it
    cannot be used."""
    wav = load_audio(source, max_seconds=MAX_UTTERANCE_SECONDS)  # (N,) at 16 kHz
    feats = log_mel(wav, config).numpy()  # (T, F)
    problem = feature_problem(feats)  # checked per utterance: statistics stay finite
    if problem is not None:
        raise AudioError(source, problem)
    return feats, len(wav) / SAMPLE_RATE


def _build_shard(task: dict) -> dict:
    """Compute one shard's features, write its .f16 file then its sidecar; returns the sidecar."""
    t0 = time.perf_counter()
    config = task["config"]
    acc = StatsAccumulator(config.n_mels)
    utts, skipped, offset, audio_seconds = [], {}, 0, 0.0
    crc = 0
    path = Path(task["dir"]) / f"{task['name']}.f16"
    with atomic_write(path, "wb") as f:
        for row in task["rows"]:
            try:
                feats, seconds = utterance_features(row["audio"], config)  # (T, F)
            except AudioError as e:
                skipped[row["id"]] = e.reason
                continue
            audio_seconds += seconds
            acc.accumulate(feats)
            data = feats.astype(DTYPE).tobytes()
            f.write(data)
            crc = zlib.crc32(data, crc)
            utts.append({"id": row["id"], "offset": offset, "frames": feats.shape[0]})
            offset += feats.shape[0]
    sidecar = {
        "key": task["key"],
        "file": path.name,
        "bytes": offset * config.n_mels * np.dtype(DTYPE).itemsize,
        "crc32": crc,
        "source_ids": [row["id"] for row in task["rows"]],
        "utterances": utts,
        "skipped_ids": skipped,
        "audio_seconds": audio_seconds,
        "compute_seconds": time.perf_counter() - t0,
        "stats": acc.to_dict(),
    }
    write_json(Path(task["dir"]) / f"{task['name']}.json", sidecar)
    return sidecar


def _mp_context() -> multiprocessing.context.BaseContext:
    """'fork' where it is safe (no CUDA in this process): workers start in milliseconds, not the
    seconds 'spawn' spends importing torch and librosa again. Workers use one thread each, so
    OpenMP state inherited from the parent is never used."""
    if "fork" in multiprocessing.get_all_start_methods() and not torch.cuda.is_initialized():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _worker_init(parent_pid: int) -> None:
    torch.set_num_threads(1)  # one process per core; intra-op threads would oversubscribe
    # a shard an orphaned worker was writing is left as a .tmp the next build removes
    watch_parent(parent_pid)


def _reusable_sidecar(cache_dir: Path, name: str, key: str, ids: list[str], check_crc: bool) -> dict | None:
    """The sidecar of a finished shard that matches this build, else None."""
    try:
        with open(cache_dir / f"{name}.json", encoding="utf-8") as f:
            side = json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
    shard = cache_dir / f"{name}.f16"
    if (side.get("key"), side.get("file"), side.get("source_ids")) != (key, shard.name, ids):
        return None
    if not _size_ok(shard, side.get("bytes", -1)):
        return None
    if check_crc and _crc32(shard) != side["crc32"]:
        return None
    return side


def _remove_stale(cache_dir: Path, keep: set[str]) -> None:
    """Delete shard files this build does not own, and temporaries whose writer is dead
    (a live process's temporary is never touched, whoever it belongs to)."""
    for p in cache_dir.iterdir():
        stale_shard = p.name.startswith("shard-") and p.name not in keep
        leftover_tmp = p.name.startswith(".") and p.name.endswith(".tmp") and not is_live_temporary(p)
        if p.is_file() and (stale_shard or leftover_tmp):
            p.unlink(missing_ok=True)


def _refuse_archive_rebuild(index_path: Path) -> None:
    """A cache whose features came from archives cannot be rebuilt here: its audio is in no file."""
    try:
        archives = json.loads(index_path.read_text(encoding="utf-8")).get("archives")
    except (OSError, ValueError, AttributeError):
        return
    if archives:
        raise FeatureCacheError(f"{index_path.parent}: out of date or damaged, and its features came "
                                f"from the archives {', '.join(archives)}; rerun `asr prepare "
                                "--cv-root` with them")


def _write_index(path: Path, index: dict) -> None:
    """index.json with one utterance per line: readable at the top, compact where it is long."""
    utts = index.pop("utterances")
    head = json.dumps(index, ensure_ascii=False, indent=2)
    lines = ",\n".join("    " + json.dumps(u, ensure_ascii=False) for u in utts)
    with atomic_write(path) as f:
        f.write(head[:-2] + ',\n  "utterances": [\n' + lines + "\n  ]\n}\n")
    index["utterances"] = utts


def build_cache(
    manifest_path: str | os.PathLike,
    cache_dir: str | os.PathLike,
    config: FeatureConfig | None = None,
    workers: int = 1,
    shard_size: int = 500,
    progress: bool = True,
    verify: bool = False,
) -> FeatureCache:
    """Features of every utterance in a JSONL manifest, cached in `cache_dir`; returns the cache.

    Quick when an up-to-date cache exists (shard sizes are checked; `verify=True` also checks
    every shard's crc32 and recomputes the damaged ones). Finished shards of an interrupted
    build are reused. Audio that fails to decode is skipped and listed in summary["skipped_ids"].
    One process builds a cache folder at a time: another waits, then finds it up to date.
    """
    with FolderLock(cache_dir, "feature cache").acquire(wait=True):
        return _build_cache(Path(manifest_path), Path(cache_dir), config, workers, shard_size,
                            progress, verify)


def _build_cache(manifest_path: Path, cache_dir: Path, config: FeatureConfig | None,
                 workers: int, shard_size: int, progress: bool, verify: bool) -> FeatureCache:
    t0 = time.perf_counter()
    config = config or FeatureConfig()
    settings = _feature_settings(config)
    key = _cache_key(manifest_path, settings, shard_size)
    index_path = cache_dir / INDEX
    if index_path.exists():
        try:
            cache = FeatureCache.open(cache_dir)
            if cache.key == key and not (verify and cache.verify()):
                return cache
        except FeatureCacheError:
            pass
        _refuse_archive_rebuild(index_path)
        index_path.unlink()  # out of date or damaged: nothing may read it while shards change
    cache_dir.mkdir(parents=True, exist_ok=True)

    rows = read_jsonl(manifest_path)
    seen = set()
    for lineno, row in enumerate(rows, 1):
        if row["id"] in seen:
            raise ValueError(f"{manifest_path}: duplicate utterance id {row['id']!r} (record {lineno})")
        seen.add(row["id"])
    chunks = [rows[i:i + shard_size] for i in range(0, len(rows), shard_size)]
    names = [_shard_name(i) for i in range(len(chunks))]
    _remove_stale(cache_dir, {f"{n}{ext}" for n in names for ext in (".f16", ".json")})

    sidecars: list[dict | None] = [
        _reusable_sidecar(cache_dir, n, key, [r["id"] for r in c], check_crc=verify)
        for n, c in zip(names, chunks, strict=True)
    ]
    tasks = [{"dir": str(cache_dir), "name": n, "key": key, "config": config,
              "rows": [{"id": r["id"], "audio": r["audio"]} for r in c]}
             for n, c, s in zip(names, chunks, sidecars, strict=True) if s is None]
    todo = [i for i, s in enumerate(sidecars) if s is None]
    from tqdm.auto import tqdm

    procs = max(1, min(workers, len(tasks)))
    with contextlib.ExitStack() as stack:
        if procs > 1:
            pool = stack.enter_context(ProcessPoolExecutor(
                procs, mp_context=_mp_context(), initializer=_worker_init, initargs=(os.getpid(),)))
            results = pool.map(_build_shard, tasks)  # submitted (workers forked) before tqdm's thread
        else:
            results = map(_build_shard, tasks)
        desc = f"features {manifest_path.parent.name}/{manifest_path.stem}"
        with tqdm(total=len(chunks), initial=len(chunks) - len(todo), unit="shard", desc=desc,
                  disable=not progress) as bar:
            for i, side in zip(todo, results, strict=True):
                sidecars[i] = side
                bar.update()

    fresh_seconds = sum(sidecars[i]["audio_seconds"] for i in todo)  # audio decoded by this call
    compute_seconds = sum(sidecars[i]["compute_seconds"] for i in todo)  # summed over workers
    acc = StatsAccumulator(config.n_mels)
    utts, skipped, audio_seconds = [], {}, 0.0
    for shard_no, side in enumerate(sidecars):
        acc.merge(StatsAccumulator.from_dict(side["stats"]))
        utts += [{"id": u["id"], "shard": shard_no, "offset": u["offset"], "frames": u["frames"]}
                 for u in side["utterances"]]
        skipped |= side["skipped_ids"]
        audio_seconds += side["audio_seconds"]
    build_seconds = time.perf_counter() - t0
    index = {
        "format": FORMAT_VERSION,
        "key": key,
        "manifest": str(manifest_path),
        "config": settings,
        "shards": [{"file": s["file"], "bytes": s["bytes"], "crc32": s["crc32"]} for s in sidecars],
        "stats": acc.result().to_dict() if acc.frames else None,
        "summary": {
            "utterances": len(utts),
            "frames": int(acc.frames),
            "bytes": int(sum(s["bytes"] for s in sidecars)),
            "skipped": len(skipped),
            "skipped_ids": skipped,
            "audio_seconds": audio_seconds,
            "build_seconds": build_seconds,
            "workers": procs,
            # audio seconds per wall second of this call (a resumed build did less work), and
            # per second of one worker's compute: the speed a single process sustains
            "x_real_time": fresh_seconds / build_seconds,
            "x_real_time_per_worker": fresh_seconds / compute_seconds if compute_seconds else 0.0,
            "mb_per_audio_hour": (sum(s["bytes"] for s in sidecars) / 2**20 / (audio_seconds / 3600)
                                  if audio_seconds else 0.0),
        },
        "utterances": utts,
    }
    _write_index(index_path, index)
    if skipped and progress:
        print(f"{manifest_path}: skipped {len(skipped)} of {len(rows)} utterances whose audio "
              f"could not be read (ids and reasons in {index_path} summary.skipped_ids)")
    return FeatureCache.open(cache_dir)


def _check_bounds(path: Path, index: dict) -> None:
    """Every utterance must lie inside its shard's bytes, as they are on disk: frame counts an
    index claims size batches and their padding, so 10^12 claimed frames must never get there."""
    n_mels = index["config"]["n_mels"]
    if type(n_mels) is not int or not 0 < n_mels <= MAX_N_MELS:
        raise FeatureCacheError(f"{path}: n_mels {n_mels!r} is not in 1..{MAX_N_MELS}; rebuild "
                                "the cache with `asr prepare`")
    row_bytes = n_mels * np.dtype(DTYPE).itemsize
    rows = []
    for s in index["shards"]:
        if s["bytes"] % row_bytes:
            raise FeatureCacheError(f"{path}: shard {s['file']} holds {s['bytes']} bytes, not whole "
                                    f"frames of {n_mels} float16 values; rebuild the cache")
        rows.append(s["bytes"] // row_bytes)
    for u in index["utterances"]:
        shard, offset, frames = u["shard"], u["offset"], u["frames"]
        if not (type(shard) is int and type(offset) is int and type(frames) is int
                and 0 <= shard < len(rows) and offset >= 0 and 0 < frames <= rows[shard] - offset):
            raise FeatureCacheError(f"{path}: utterance {u['id']!r} claims frames {offset}..+{frames} "
                                    f"of shard {shard!r}, beyond what the shard files hold; "
                                    "rebuild the cache with `asr prepare`")


class FeatureCache:
    """Read-only view of a built cache: cache[id] -> (T, n_mels) float16 memory-mapped array."""

    def __init__(self, cache_dir: Path, index: dict):
        self.dir = cache_dir
        self.index = index
        self.key: str = index["key"]
        self.n_mels: int = index["config"]["n_mels"]
        self._shards = index["shards"]
        self._where = {u["id"]: (u["shard"], u["offset"], u["frames"]) for u in index["utterances"]}
        self._maps: dict[int, np.ndarray] = {}  # shard -> (frames, n_mels) memmap, opened lazily

    @classmethod
    def open(cls, cache_dir: str | os.PathLike) -> FeatureCache:
        """Open a finished cache; shard sizes are checked now, each shard's crc32 before its
        first read (and all of them by verify())."""
        cache_dir = Path(cache_dir)
        path = cache_dir / INDEX
        if not path.exists():
            raise FeatureCacheError(
                f"{cache_dir}: no feature cache here ({INDEX} missing: never built, or the build did "
                "not finish); build it with `asr prepare` or asr.feature_cache.build_cache()")
        try:
            with open(path, encoding="utf-8") as f:
                index = json.load(f)
            if index.get("format") != FORMAT_VERSION:
                raise FeatureCacheError(f"{path}: cache format {index.get('format')} is not "
                                        f"{FORMAT_VERSION}; rebuild the cache")
            # Caches from before speed perturbation was dropped list their speed_factors: with
            # (1.0,) they hold exactly today's features; other copies were never trained on.
            speeds = index["config"].get("speed_factors", [1.0])
            if list(speeds) != [1.0]:
                raise FeatureCacheError(f"{path}: built with speed-perturbed copies (speed_factors "
                                        f"{speeds}), which are no longer made or read; rebuild the "
                                        "cache with `asr prepare` or build_cache()")
            for s in index["shards"]:
                if Path(s["file"]).name != s["file"] or not s["file"].startswith("shard-"):
                    raise FeatureCacheError(f"{path}: shard {s['file']!r} is not a file of {cache_dir}")
                if not _size_ok(cache_dir / s["file"], s["bytes"]):
                    raise FeatureCacheError(f"{cache_dir / s['file']}: missing or not {s['bytes']} "
                                            "bytes; rerun build_cache (or `asr prepare`) to recompute it")
            _check_bounds(path, index)
            return cls(cache_dir, index)
        except FeatureCacheError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise FeatureCacheError(f"{path}: unreadable or malformed cache index ({e!r}); rebuild "
                                    "the cache with `asr prepare` or build_cache()") from None

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self._where

    @property
    def ids(self) -> list[str]:
        return list(self._where)

    def frames(self, utt_id: str) -> int:
        return self._where[utt_id][2]

    def _map(self, shard: int) -> np.ndarray:
        mm = self._maps.get(shard)
        if mm is None:
            s = self._shards[shard]
            path = self.dir / s["file"]
            # checksummed once per process before its first read: a damaged shard is an error
            # naming it, never silently trained on
            if _crc32(path) != s["crc32"]:
                raise FeatureCacheError(f"{path}: checksum mismatch, the shard is damaged; rerun "
                                        "`asr prepare` (or build_cache) to recompute it")
            rows = s["bytes"] // (self.n_mels * np.dtype(DTYPE).itemsize)
            mm = np.memmap(path, dtype=DTYPE, mode="r", shape=(rows, self.n_mels))
            self._maps[shard] = mm
        return mm

    def __getitem__(self, utt_id: str) -> np.ndarray:
        """(T, n_mels) float16, a read-only view into the shard's memory map."""
        try:
            shard, offset, frames = self._where[utt_id]
        except KeyError:
            raise KeyError(f"{utt_id!r} is not in the feature cache {self.dir}") from None
        return np.asarray(self._map(shard)[offset:offset + frames])  # (T, F)

    @property
    def stats(self) -> FeatureStats:
        if self.index["stats"] is None:
            raise FeatureCacheError(f"{self.dir}: the cache holds no frames, so it has no statistics")
        try:
            return FeatureStats.from_dict(self.index["stats"])
        except (ValueError, KeyError, TypeError) as e:
            raise FeatureCacheError(f"{self.dir / INDEX}: unusable statistics ({e}); rebuild the "
                                    "cache with `asr prepare`") from None

    @property
    def summary(self) -> dict:
        return self.index["summary"]

    @property
    def config(self) -> dict:
        """The feature settings the cache was built with (n_mels, win_ms, hop_ms, ...)."""
        return self.index["config"]

    def verify(self) -> list[str]:
        """Shard files whose size or crc32 differs from the index (empty when all are sound)."""
        bad = []
        for s in self._shards:
            path = self.dir / s["file"]
            if not _size_ok(path, s["bytes"]) or _crc32(path) != s["crc32"]:
                bad.append(s["file"])
        return bad

    def __getstate__(self) -> dict:
        # DataLoader workers get the index, not copies of mapped shards; they map their own.
        return {k: v for k, v in self.__dict__.items() if k != "_maps"} | {"_maps": {}}
