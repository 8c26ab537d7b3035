"""A feature cache filled from a stream: utterances arrive in any order, from memory.

`build_cache` computes a manifest's features itself, shard by shard in manifest order, from
audio files. When the audio is a stream instead (a Common Voice archive read in one pass),
`Featurizer` computes features of clips held in memory with worker processes, and
`StreamCacheWriter` appends them to shards as they come; `finish(manifest)` writes the index
that makes the folder a cache in build_cache's own format and key, listing exactly the
manifest's utterances, so `build_cache` and `FeatureCache` take it as up to date.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from asr.audio import AudioBytes, AudioError, audio_info
from asr.config import FeatureConfig
from asr.feature_cache import (
    DTYPE,
    FORMAT_VERSION,
    INDEX,
    FeatureCache,
    FeatureCacheError,
    _cache_key,
    _feature_settings,
    _mp_context,
    _shard_name,
    _worker_init,
    _write_index,
    utterance_features,
)
from asr.features import StatsAccumulator
from asr.fileio import atomic_write, read_jsonl
from asr.run_lock import LOCK_NAME, FolderLock

SHARD_UTTERANCES = 500  # source utterances per shard, as build_cache's default shard_size
PENDING_PER_WORKER = 4  # clips in flight per worker: memory stays a few clips, workers stay busy


def featurize(task: tuple[str, AudioBytes, FeatureConfig, bool]) -> dict:
    """Header duration and, when asked, features of one clip held in memory (a worker's task)."""
    key, clip, config, want_features = task
    out: dict = {"key": key}
    try:
        out["seconds"] = audio_info(clip)[0]
    except AudioError as e:
        out["header_problem"] = e.reason
    if want_features:
        try:
            out["feats"], out["audio_seconds"] = utterance_features(clip, config)
        except AudioError as e:
            out["reason"] = e.reason
    return out


class Featurizer:
    """`featurize` over clips in `workers` processes; results come back in submission order,
    with at most PENDING_PER_WORKER clips per worker in flight."""

    def __init__(self, config: FeatureConfig, workers: int = 1):
        self.config = config
        self._stack = contextlib.ExitStack()
        self._pool = None
        if workers > 1:
            self._pool = self._stack.enter_context(ProcessPoolExecutor(
                workers, mp_context=_mp_context(), initializer=_worker_init,
                initargs=(os.getpid(),)))
            self._pool.submit(int).result()  # forks every worker now, before any progress thread
        self._limit = PENDING_PER_WORKER * max(1, workers)
        self._pending: deque = deque()

    def submit(self, key: str, clip: AudioBytes, want_features: bool) -> Iterator[dict]:
        """Queue one clip; yields the results that are due (in order) to keep the queue short."""
        task = (key, clip, self.config, want_features)
        if self._pool is None:
            yield featurize(task)
            return
        self._pending.append(self._pool.submit(featurize, task))
        while len(self._pending) > self._limit:
            yield self._pending.popleft().result()

    def drain(self) -> Iterator[dict]:
        while self._pending:
            yield self._pending.popleft().result()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Featurizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StreamCacheWriter:
    """Shards of a cache folder written in arrival order; `finish` writes its index."""

    def __init__(self, cache_dir: Path, config: FeatureConfig, archives: list[str]):
        self.dir = Path(cache_dir)
        self.config, self.archives = config, archives
        # held from clearing the folder to its index (a build_cache there waits meanwhile)
        self._lock = FolderLock(self.dir, "feature cache").acquire(wait=True)
        clear_cache_dir(self.dir)
        self._where: dict[str, tuple[int, int, int]] = {}  # utterance id -> (shard, offset, frames)
        self._written: dict[str, float] = {}  # source id -> audio seconds
        self.skipped: dict[str, str] = {}  # source id -> why its audio could not be used
        self._shards: list[dict] = []
        self._acc = StatsAccumulator(config.n_mels)
        self._file = self._writing = None
        self._t0 = time.perf_counter()

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self._written or utt_id in self.skipped

    def add(self, utt_id: str, feats: np.ndarray, audio_seconds: float) -> None:
        """Append one utterance's (T, F) float32 features."""
        if self._file is None or self._shards[-1]["sources"] >= SHARD_UTTERANCES:
            self._close_shard()
            name = f"{_shard_name(len(self._shards))}.f16"
            self._writing = atomic_write(self.dir / name, "wb")
            self._file = self._writing.__enter__()
            self._shards.append({"file": name, "bytes": 0, "crc32": 0, "sources": 0})
        shard = self._shards[-1]
        data = feats.astype(DTYPE).tobytes()
        self._file.write(data)
        frames_before = shard["bytes"] // (self.config.n_mels * np.dtype(DTYPE).itemsize)
        self._where[utt_id] = (len(self._shards) - 1, frames_before, feats.shape[0])
        shard["bytes"] += len(data)
        shard["crc32"] = zlib.crc32(data, shard["crc32"])
        self._acc.accumulate(feats)
        shard["sources"] += 1
        self._written[utt_id] = audio_seconds

    def skip(self, utt_id: str, reason: str) -> None:
        self.skipped[utt_id] = reason

    def _close_shard(self, error: BaseException | None = None) -> None:
        if self._writing is not None:
            self._writing.__exit__(type(error) if error else None, error, None)
        self._file = self._writing = None

    def abort(self, error: BaseException) -> None:
        """Drop the shard being written (an error stopped the stream)."""
        self._close_shard(error)
        self._lock.release()

    def finish(self, manifest_path: Path, missing_reason: str) -> FeatureCache:
        """Write index.json for the utterances of `manifest_path`; an utterance whose features
        never came is listed as skipped with `missing_reason`."""
        self._close_shard()
        ids = [r["id"] for r in read_jsonl(manifest_path)]
        wanted = set(ids)
        acc = self._acc
        unused = [utt_id for utt_id in self._where if utt_id not in wanted]
        if unused:  # statistics cover the manifest's utterances only, as build_cache's do
            acc = StatsAccumulator.from_dict(self._acc.to_dict())
            for utt_id in unused:
                _subtract(acc, self._read(utt_id))
        utts, skipped, seconds = [], {}, 0.0
        for utt_id in ids:
            if utt_id not in self._written:
                skipped[utt_id] = self.skipped.get(utt_id, missing_reason)
                continue
            seconds += self._written[utt_id]
            shard, offset, frames = self._where[utt_id]
            utts.append({"id": utt_id, "shard": shard, "offset": offset, "frames": frames})
        total_bytes = sum(s["bytes"] for s in self._shards)
        build_seconds = time.perf_counter() - self._t0
        index = {
            "format": FORMAT_VERSION,
            "key": _cache_key(manifest_path, _feature_settings(self.config), SHARD_UTTERANCES),
            "manifest": str(manifest_path),
            "archives": self.archives,
            "config": _feature_settings(self.config),
            "shards": [{k: s[k] for k in ("file", "bytes", "crc32")} for s in self._shards],
            "stats": acc.result().to_dict() if acc.frames else None,
            "summary": {
                "utterances": len(utts), "frames": int(acc.frames), "bytes": total_bytes,
                "skipped": len(skipped), "skipped_ids": skipped, "audio_seconds": seconds,
                "build_seconds": build_seconds, "workers": 0,
                "x_real_time": sum(self._written.values()) / build_seconds,
                "x_real_time_per_worker": 0.0,
                "mb_per_audio_hour": total_bytes / 2**20 / (seconds / 3600) if seconds else 0.0,
            },
            "utterances": utts,
        }
        _write_index(self.dir / INDEX, index)
        self._lock.release()
        return FeatureCache.open(self.dir)

    def _read(self, utt_id: str) -> np.ndarray:
        shard, offset, frames = self._where[utt_id]
        row_bytes = self.config.n_mels * np.dtype(DTYPE).itemsize
        with open(self.dir / self._shards[shard]["file"], "rb") as f:
            f.seek(offset * row_bytes)
            data = np.frombuffer(f.read(frames * row_bytes), dtype=DTYPE)
        return data.reshape(frames, self.config.n_mels).astype(np.float32)  # (T, F)


def _subtract(acc: StatsAccumulator, feats: np.ndarray) -> None:
    """Take the frames of one (T, F) matrix back out of `acc` (float16 as stored: a rounding
    error of 1e-3 of those frames' share, for utterances the manifest does not use)."""
    x = feats.astype(np.float64)
    acc.frames -= x.shape[0]
    acc.sum -= x.sum(axis=0)
    acc.sumsq -= np.square(x).sum(axis=0)


def clear_cache_dir(cache_dir: Path) -> None:
    """Empty a cache folder for a new stream: its index first, so nothing reads it meanwhile.
    The folder's lock file stays: its writer (this process) holds it."""
    (cache_dir / INDEX).unlink(missing_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for p in cache_dir.iterdir():
        if p.name == LOCK_NAME:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def cache_matches(cache_dir: Path, manifest_path: Path, config: FeatureConfig) -> bool:
    """Whether `cache_dir` holds a sound, archive-made cache of `manifest_path` with `config`."""
    try:
        cache = FeatureCache.open(cache_dir)
    except FeatureCacheError:
        return False
    key = _cache_key(manifest_path, _feature_settings(config), SHARD_UTTERANCES)
    return bool(cache.index.get("archives")) and cache.key == key and not cache.verify()
