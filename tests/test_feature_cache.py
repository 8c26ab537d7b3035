import json
import multiprocessing
import pickle

import numpy as np
import pytest
import soundfile as sf

import asr.feature_cache as fc
from asr.audio import load_audio
from asr.config import FeatureConfig
from asr.feature_cache import FeatureCache, FeatureCacheError, build_cache
from asr.features import FeatureStats, log_mel, num_frames
from asr.fileio import write_jsonl
from asr.workers import exit_when_orphaned

GOOD = ["a", "b", "c", "d", "e"]


@pytest.fixture
def manifest(tmp_path):
    """Five short clips (WAV at 16/48 kHz, MP3 at 48 kHz) and one file that is not audio."""
    rng = np.random.default_rng(0)
    clips = tmp_path / "clips"
    clips.mkdir()
    rows = []
    for i, (utt, sr, fmt) in enumerate(zip(GOOD, [16000, 48000, 48000, 16000, 48000],
                                           ["WAV", "MP3", "WAV", "MP3", "MP3"], strict=True)):
        seconds = 0.3 + 0.1 * i
        t = np.arange(int(seconds * sr)) / sr
        y = 0.3 * np.sin(2 * np.pi * (150 + 100 * i) * t) + 0.01 * rng.standard_normal(t.size)
        path = clips / f"{utt}.{fmt.lower()}"
        sf.write(path, y.astype(np.float32), sr, format=fmt)
        rows.append({"id": utt, "audio": str(path), "duration": seconds, "locale": "de",
                     "speaker": "s1", "text": "x", "norm_text": "x"})
    bad = clips / "bad.wav"
    bad.write_bytes(b"this is not a wav file" * 10)
    rows.insert(2, {"id": "bad", "audio": str(bad), "duration": 1.0, "locale": "de",
                    "speaker": "s2", "text": "y", "norm_text": "y"})
    path = tmp_path / "train.jsonl"
    write_jsonl(path, rows)
    return path


@pytest.fixture
def calls(monkeypatch):
    """Counts shards computed in-process (workers=1)."""
    done = []
    real = fc._build_shard

    def counting(task):
        done.append(task["name"])
        return real(task)

    monkeypatch.setattr(fc, "_build_shard", counting)
    return done


def build(manifest, cache_dir, **kw):
    return build_cache(manifest, cache_dir, shard_size=2, progress=False, **kw)


def test_build_values_skips_and_summary(manifest, tmp_path):
    cache = build(manifest, tmp_path / "cache")
    assert len(cache) == 5 and sorted(cache.ids) == GOOD and "bad" not in cache
    s = cache.summary
    assert s["skipped"] == 1 and list(s["skipped_ids"]) == ["bad"]
    assert s["utterances"] == 5 and s["x_real_time"] > 0 and s["x_real_time_per_worker"] > 0
    assert s["workers"] == 1 and s["mb_per_audio_hour"] > 0
    assert s["audio_seconds"] == pytest.approx(0.3 + 0.4 + 0.5 + 0.6 + 0.7, abs=0.01)
    rows = {r["id"]: r for r in map(json.loads, manifest.read_text().splitlines())}
    total = 0
    for utt in GOOD:
        wav = load_audio(rows[utt]["audio"])
        ref = log_mel(wav).numpy()  # (T, 80) float32
        got = cache[utt]
        assert got.dtype == np.float16 and got.shape == ref.shape == (num_frames(len(wav)), 80)
        assert cache.frames(utt) == len(got)
        np.testing.assert_allclose(got.astype(np.float32), ref, rtol=1e-3, atol=1e-3)  # float16
        total += len(got)
    assert s["frames"] == total and s["bytes"] == total * 80 * 2
    assert cache.stats.frames == total
    assert cache.verify() == []
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert [sh["file"] for sh in index["shards"]] == [f"shard-0000{i}.f16" for i in range(3)]
    assert index["config"]["n_mels"] == 80 and "freq_masks" not in index["config"]


def test_stats_match_cached_features(manifest, tmp_path):
    cache = build(manifest, tmp_path / "cache")
    every = np.concatenate([cache[u].astype(np.float64) for u in GOOD])
    np.testing.assert_allclose(cache.stats.mean, every.mean(0), atol=5e-3)
    np.testing.assert_allclose(cache.stats.std, every.std(0), atol=5e-3)
    assert isinstance(FeatureStats.merged([cache.stats, cache.stats]), FeatureStats)


def test_rerun_does_no_work(manifest, tmp_path, calls):
    build(manifest, tmp_path / "cache")
    assert len(calls) == 3
    cache = build(manifest, tmp_path / "cache")
    assert len(calls) == 3 and len(cache) == 5


def test_corrupted_shard_found_and_rebuilt(manifest, tmp_path, calls):
    cache = build(manifest, tmp_path / "cache")
    before = cache["c"].copy()
    shard = tmp_path / "cache" / "shard-00001.f16"
    data = bytearray(shard.read_bytes())
    data[10] ^= 0xFF
    shard.write_bytes(bytes(data))
    assert FeatureCache.open(tmp_path / "cache").verify() == ["shard-00001.f16"]
    build(manifest, tmp_path / "cache")  # size-only check: not noticed, no work
    assert len(calls) == 3
    cache = build(manifest, tmp_path / "cache", verify=True)
    assert calls[3:] == ["shard-00001"]
    assert cache.verify() == [] and np.array_equal(cache["c"], before)


def test_missing_or_truncated_shard_is_recomputed(manifest, tmp_path, calls):
    build(manifest, tmp_path / "cache")
    shard = tmp_path / "cache" / "shard-00002.f16"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(FeatureCacheError, match="shard-00002.f16"):
        FeatureCache.open(tmp_path / "cache")
    cache = build(manifest, tmp_path / "cache")
    assert calls[3:] == ["shard-00002"] and cache.verify() == []


def test_changed_config_or_manifest_rebuilds(manifest, tmp_path, calls):
    build(manifest, tmp_path / "cache")
    cache = build(manifest, tmp_path / "cache", config=FeatureConfig(n_mels=40))
    assert len(calls) == 6 and cache["a"].shape[1] == 40 and cache.verify() == []
    # SpecAugment settings do not change the features: no rebuild
    build(manifest, tmp_path / "cache", config=FeatureConfig(n_mels=40, freq_masks=5))
    assert len(calls) == 6
    rows = manifest.read_text().splitlines()
    manifest.write_text("\n".join(rows[:2]) + "\n")  # a, b
    cache = build(manifest, tmp_path / "cache", config=FeatureConfig(n_mels=40))
    assert sorted(cache.ids) == ["a", "b"] and cache.summary["skipped"] == 0
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "index.json", "shard-00000.f16", "shard-00000.json"]


def test_resume_after_kill_with_leftover_temp_files(manifest, tmp_path, calls):
    cache_dir = tmp_path / "cache"
    build(manifest, cache_dir)
    # a kill -9 mid-build: no index yet, one shard never finished, half-written temporaries
    (cache_dir / "index.json").unlink()
    (cache_dir / "shard-00001.json").unlink()
    (cache_dir / ".shard-00001.f16.k1ll3d.tmp").write_bytes(b"\x00" * 123)
    (cache_dir / ".index.json.k1ll3d.tmp").write_text('{"utter')
    with pytest.raises(FeatureCacheError, match=str(cache_dir)):
        FeatureCache.open(cache_dir)
    cache = build(manifest, cache_dir)
    assert calls[3:] == ["shard-00001"]
    assert len(cache) == 5 and cache.verify() == []
    assert not list(cache_dir.glob(".*.tmp"))


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_two_workers_identical_to_one(manifest, tmp_path, monkeypatch, start_method):
    monkeypatch.setattr(fc, "_mp_context", lambda: multiprocessing.get_context(start_method))
    one = build(manifest, tmp_path / "one", workers=1)
    two = build(manifest, tmp_path / "two", workers=2)
    assert two.summary["workers"] == 2
    assert one.index["utterances"] == two.index["utterances"]
    assert one.index["shards"] == two.index["shards"]  # same bytes, same crc32
    assert one.index["stats"] == two.index["stats"]


def test_index_stores_identity_and_old_speed_factors(manifest, tmp_path, calls):
    cache = build(manifest, tmp_path / "cache", config=FeatureConfig(hop_ms=20.0))
    assert {k: cache.config[k] for k in ("n_mels", "win_ms", "hop_ms")} == {
        "n_mels": 80, "win_ms": 25.0, "hop_ms": 20.0}
    assert "speed_factors" not in cache.config
    index_path = tmp_path / "cache" / "index.json"
    index = json.loads(index_path.read_text())
    index["config"]["speed_factors"] = [1.0]  # written before speed perturbation was removed
    index_path.write_text(json.dumps(index))
    assert np.array_equal(FeatureCache.open(tmp_path / "cache")["a"], cache["a"])  # still readable
    index["config"]["speed_factors"] = [0.9, 1.0, 1.1]
    index_path.write_text(json.dumps(index))
    with pytest.raises(FeatureCacheError, match=r"speed_factors \[0.9, 1.0, 1.1\].*asr prepare"):
        FeatureCache.open(tmp_path / "cache")
    rebuilt = build(manifest, tmp_path / "cache", config=FeatureConfig(hop_ms=20.0))  # no crash
    # a fresh index (its shards, whose key still matches, are reused)
    assert len(calls) == 3 and "speed_factors" not in rebuilt.config and rebuilt.verify() == []


def test_open_missing_names_directory(tmp_path):
    with pytest.raises(FeatureCacheError, match="nowhere"):
        FeatureCache.open(tmp_path / "nowhere")


def test_pickles_without_mapped_shards(manifest, tmp_path):
    cache = build(manifest, tmp_path / "cache")
    _ = cache["a"]
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._maps == {} and np.array_equal(clone["e"], cache["e"])
    with pytest.raises(KeyError, match="zzz"):
        cache["zzz"]


def test_pool_worker_exits_when_orphaned():
    ctx = multiprocessing.get_context("fork")
    orphan = ctx.Process(target=exit_when_orphaned, args=(-1, 0.01))  # parent "gone"
    orphan.start()
    orphan.join(10)
    assert orphan.exitcode == 1
    child = ctx.Process(target=exit_when_orphaned, args=(multiprocessing.current_process().pid, 0.01))
    child.start()
    child.join(0.3)
    assert child.is_alive()  # its parent (this process) lives: it keeps waiting
    child.terminate()
    child.join(10)
