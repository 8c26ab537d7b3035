import dataclasses
import json

import librosa
import numpy as np
import pytest
import torch

from asr.config import FeatureConfig
from asr.data import batch_features
from asr.features import (
    HOP_LENGTH,
    N_MELS,
    SAMPLE_RATE,
    SILENCE_LOG_MEL,
    FeatureStats,
    log_mel,
    mel_filters,
    num_frames,
    spec_augment,
)
from asr.model.encoder import MIN_INPUT_FRAMES

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def chirp(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A rising tone plus noise, so no mel bin sits at the log floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    y = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.02 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def test_log_mel_matches_librosa():
    y = chirp(1.3)
    ref = librosa.feature.melspectrogram(
        y=y, sr=16000, n_fft=400, hop_length=160, n_mels=80, power=2.0, center=True,
        pad_mode="reflect",  # librosa >= 0.10 defaults to zero padding; ours reflects
    )
    ref = np.log(np.maximum(ref, 1e-10)).T  # (T, 80)
    out = log_mel(y)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    # float32 STFT against librosa's float32 STFT: measured max error ~3e-5 in log units
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-3, rtol=0)


def test_mel_filters_cached_and_shaped():
    fb = mel_filters(N_MELS, "cpu")
    assert fb.shape == (80, 201)
    assert mel_filters(N_MELS, torch.device("cpu")) is fb
    np.testing.assert_allclose(fb.numpy(), librosa.filters.mel(sr=16000, n_fft=400, n_mels=80))


@pytest.mark.parametrize("n", [1, 50, 159, 160, 200, 201, 399, 400, 401, 1599, 1600, 16000, 16001])
def test_frame_count(n):
    y = chirp(1.1)[:n]
    assert log_mel(y).shape == (num_frames(n), N_MELS) == (1 + n // HOP_LENGTH, 80)


def test_batch_equals_per_item():
    batch = np.stack([chirp(0.5, seed=s) for s in range(3)])  # (3, N)
    out = log_mel(torch.from_numpy(batch))  # (3, T, 80)
    for i in range(3):
        torch.testing.assert_close(out[i], log_mel(batch[i]), atol=1e-5, rtol=1e-5)


def test_log_floor_on_silence():
    out = log_mel(np.zeros(1600, dtype=np.float32))
    assert torch.isfinite(out).all() and torch.allclose(out, torch.full_like(out, np.log(1e-10)))


def test_other_n_mels_and_window():
    cfg = FeatureConfig(n_mels=40, win_ms=20.0)
    assert log_mel(chirp(0.2), cfg).shape == (num_frames(3200), 40)


def normalised_batch(B=4, T=600, F=80, seed=0):
    return torch.randn(B, T, F, generator=torch.Generator().manual_seed(seed)) + 5.0  # never 0


def test_spec_augment_deterministic():
    x, cfg = normalised_batch(), FeatureConfig()
    a = spec_augment(x, cfg, generator=torch.Generator().manual_seed(1))
    b = spec_augment(x, cfg, generator=torch.Generator().manual_seed(1))
    c = spec_augment(x, cfg, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a == 0).any() and torch.equal(x, normalised_batch())  # input left untouched


def test_spec_augment_time_masks_stay_inside_lengths():
    cfg = FeatureConfig(freq_masks=0, time_mask_width_frames=40, time_mask_max_ratio=0.2)
    x = normalised_batch(B=6, T=700)
    lengths = torch.tensor([700, 650, 420, 150, 99, 30])
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        y = spec_augment(x, cfg, generator=g, lengths=lengths)
        masked = (y == 0).all(dim=2)  # (B, T) whole frames zeroed
        for b, n in enumerate(lengths.tolist()):
            assert not masked[b, n:].any()  # nothing past the real length
            assert masked[b].sum() <= 0.2 * n  # total budget
        assert not masked[4:].any()  # under 100 frames: no time masks
    assert (y == x).sum() > 0.7 * x.numel()


def test_spec_augment_single_utterance_equals_batch_of_one():
    x = normalised_batch(B=1, T=400)
    one = spec_augment(x[0], FeatureConfig(), generator=torch.Generator().manual_seed(4), lengths=[300])
    batch = spec_augment(x, FeatureConfig(), generator=torch.Generator().manual_seed(4),
                         lengths=torch.tensor([300]))
    assert one.shape == (400, 80) and torch.equal(one, batch[0])
    assert not (one[300:] == 0).all(dim=1).any()  # no time mask past the real length


def test_feature_config_round_trips_and_validates():
    cfg = FeatureConfig(freq_masks=1, hop_ms=20.0)
    back = FeatureConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert back == cfg and hash(back) == hash(cfg)
    assert (cfg.n_fft, cfg.hop_length) == (400, 320)
    assert cfg.identity() == {"n_mels": 80, "win_ms": 25.0, "hop_ms": 20.0}
    for bad in ({"time_masks": -1}, {"n_mels": 0}, {"hop_ms": 0.0}, {"time_mask_max_ratio": 1.5}):
        with pytest.raises(ValueError):
            FeatureConfig(**bad)


def test_spec_augment_freq_masks_bounded():
    cfg = dataclasses.replace(FeatureConfig(), time_masks=0, freq_masks=2, freq_mask_width=15)
    x = normalised_batch(B=8, T=50)
    y = spec_augment(x, cfg, generator=torch.Generator().manual_seed(3))
    zero_bins = (y == 0).all(dim=1)  # (B, F)
    assert (zero_bins.sum(dim=1) <= 30).all() and zero_bins.any()
    assert torch.equal((y == 0), zero_bins[:, None, :].expand_as(y))  # whole bins, every frame


@cuda
@pytest.mark.requires_cuda
def test_cuda_features_and_spec_augment():
    y = chirp(0.7)
    torch.testing.assert_close(log_mel(torch.from_numpy(y).cuda()).cpu(), log_mel(y), atol=1e-3, rtol=1e-4)
    x = normalised_batch().cuda()
    g = lambda: torch.Generator(device="cuda").manual_seed(5)  # noqa: E731
    lengths = torch.tensor([600, 500, 300, 120])
    a = spec_augment(x, FeatureConfig(), generator=g(), lengths=lengths)
    assert a.is_cuda and torch.equal(a, spec_augment(x, FeatureConfig(), generator=g(), lengths=lengths))
    stats = FeatureStats(mean=np.zeros(80), std=np.ones(80) * 2, frames=1)
    assert stats.normalize(x.half()).dtype == torch.float16


def test_stats_accumulator_and_normalize():
    x = torch.randn(300, 80, dtype=torch.float64) * 3 + 7  # (T, F)
    acc = FeatureStats.accumulator(80)
    acc.accumulate(x[:100])
    acc.accumulate(x[100:].numpy())
    stats = acc.result()
    assert stats.frames == 300
    np.testing.assert_allclose(stats.mean, x.mean(0).numpy(), rtol=1e-10)
    np.testing.assert_allclose(stats.std, x.std(0, unbiased=False).numpy(), rtol=1e-8)
    z = stats.normalize(x.float()[None])  # (1, T, F)
    assert z.dtype == torch.float32
    torch.testing.assert_close(z.mean(dim=(0, 1)), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(dim=(0, 1), unbiased=False), torch.ones(80), atol=1e-4, rtol=0)


def test_stats_merged_equals_concatenation_and_round_trips():
    rng = np.random.default_rng(0)
    parts = [rng.normal(loc=m, scale=s, size=(n, 80)) for m, s, n in [(0, 1, 50), (4, 2, 300), (-3, 0.5, 7)]]
    stats = []
    for p in parts:
        acc = FeatureStats.accumulator(80)
        acc.accumulate(p)
        stats.append(acc.result())
    merged = FeatureStats.merged(stats)
    whole = np.concatenate(parts)
    assert merged.frames == len(whole)
    np.testing.assert_allclose(merged.mean, whole.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(merged.std, whole.std(0), rtol=1e-10)
    back = FeatureStats.from_dict(json.loads(json.dumps(merged.to_dict())))
    np.testing.assert_array_equal(back.mean, merged.mean)
    np.testing.assert_array_equal(back.std, merged.std)
    assert back.frames == merged.frames


def test_batch_features_pads_normalises_and_zeroes_padding():
    F = 6
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(12, F, generator=g), torch.randn(3, F, generator=g).half(),
             torch.randn(MIN_INPUT_FRAMES, F, generator=g)]
    stats = FeatureStats(mean=np.full(F, -2.0), std=np.full(F, 4.0), frames=1)
    x, lens = batch_features(feats, stats)
    assert x.shape == (3, 12, F) and x.dtype == torch.float32
    assert lens.tolist() == [12, MIN_INPUT_FRAMES, MIN_INPUT_FRAMES]  # short input: model minimum
    assert torch.allclose(x[0], (feats[0] + 2.0) / 4.0)
    assert torch.allclose(x[1, :3], (feats[1].float() + 2.0) / 4.0)
    # the short input is extended with the log-mel of silence, counted as real frames
    silence = (SILENCE_LOG_MEL + 2.0) / 4.0
    assert torch.allclose(x[1, 3:MIN_INPUT_FRAMES], torch.full((MIN_INPUT_FRAMES - 3, F), silence))
    assert (x[1, MIN_INPUT_FRAMES:] == 0).all() and (x[2, MIN_INPUT_FRAMES:] == 0).all()
    raw, _ = batch_features(feats, None)  # no statistics: raw log-mel, padding still zero
    assert torch.equal(raw[0], feats[0]) and (raw[2, MIN_INPUT_FRAMES:] == 0).all()
    assert SILENCE_LOG_MEL == pytest.approx(log_mel(np.zeros(1600, np.float32)).min().item(), abs=1e-3)


def test_config_loads_without_torch():
    import subprocess
    import sys

    code = ("import sys, asr.config as c; c.FeatureConfig(); c.DataConfig(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
