"""Shared fixtures: tiny corpora made in seconds."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from cvfake import make_release

# Tests run on 2 shared cores: one torch thread each keeps timings sane and results exact.
torch.set_num_threads(int(os.environ.get("ASR_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def fp32_on_every_cpu(monkeypatch, request):
    """`precision: auto` picks bf16 on CPUs with AMX or AVX512-BF16: tests see a CPU without
    them, so the same expectations hold on every machine. test_device.py checks both answers."""
    if "native_bf16_check" not in request.keywords:
        from asr import device

        monkeypatch.setattr(device, "cpu_bf16_features", lambda: [])


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running tests, run by `make test-all`")
    config.addinivalue_line("markers", "requires_cuda: needs a CUDA device")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "requires_cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fake_data(tmp_path_factory):
    """A prepared two-language data directory (de, zh-CN) from a fake release of tone clips."""
    from asr.prepare import prepare_data
    from data_prep.release import prepare_manifests

    root = tmp_path_factory.mktemp("fake")
    for locale in ("de", "zh-CN"):
        make_release(root / "cv", locale, train=24, dev=4, test=4, speakers=(6, 2, 2),
                     seconds=[0.4, 0.6, 0.8, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tokenizer vocabulary clamped on a toy corpus
        prepare_manifests(root / "cv", ["de", "zh-CN"], root / "data", progress=False)
        prepare_data(root / "data", ["de", "zh-CN"], vocab_size=32, units="unigram", workers=1,
                     progress=False)
    return root / "data"


@pytest.fixture(scope="session")
def tiny_run(fake_data, tmp_path_factory):
    """A run directory trained for 40 steps with asr/configs/tiny.yaml on `fake_data`.

    Shared by the session: tests read it and copy what they damage, never change it."""
    from asr.config import load_run_config
    from asr.train import Trainer

    out = tmp_path_factory.mktemp("tiny_run") / "run"
    Trainer.from_data(load_run_config("tiny"), fake_data, ["de", "zh-CN"], out, progress=False).fit()
    return out
