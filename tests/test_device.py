"""Precision by capability: bf16 only where the hardware runs it natively."""

import warnings
from pathlib import Path

import pytest
import torch
import yaml

from asr import device
from asr.config import CONFIG_DIR, load_run_config
from asr.device import choose_precision, native_bf16

CPU = torch.device("cpu")


@pytest.mark.native_bf16_check
@pytest.mark.parametrize(("amx", "avx512_bf16", "native"), [
    (True, False, True), (False, True, True), (True, True, True), (False, False, False)])
def test_cpu_bf16_is_native_with_amx_or_avx512_bf16(monkeypatch, amx, avx512_bf16, native):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    ok, why = native_bf16(CPU)
    assert ok is native
    p = choose_precision("auto", CPU)
    assert p.name == ("bf16" if native else "fp32")
    assert p.autocast_dtype == (torch.bfloat16 if native else None)
    assert why in p.reason and ("neither" in why) == (not native)


@pytest.mark.native_bf16_check
@pytest.mark.parametrize(("amx", "width", "expected"), [
    (True, 144, "bf16"), (False, 144, "fp32"), (False, 256, "bf16"), (False, None, "bf16")])
def test_avx512_bf16_without_amx_keeps_narrow_models_in_fp32(monkeypatch, amx, width, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    p = choose_precision("auto", CPU, width)
    assert p.name == expected
    assert ("no AMX" in p.reason) == (expected == "fp32")
    assert choose_precision("bf16", CPU, width).name == "bf16"  # asked for: obeyed


@pytest.mark.native_bf16_check
def test_the_real_cpu_answers_consistently():
    ok, why = native_bf16(CPU)
    assert ok == bool(device.cpu_bf16_features()) and why


def test_explicit_bf16_without_native_support_warns_once(monkeypatch):
    device._warn_emulated_bf16.cache_clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            p = choose_precision("bf16", CPU)
    assert p.name == "bf16" and "emulated" in p.reason
    assert len(caught) == 1 and "6x slower" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert choose_precision("fp32", CPU).autocast_dtype is None
        assert choose_precision("auto", CPU).name == "fp32"


def test_cuda_auto_falls_back_to_fp16_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Old GPU")
    p = choose_precision("auto", torch.device("cuda", 0))
    assert p.name == "fp16" and "Old GPU lacks bf16" in p.reason


def _shipped_configs() -> list[Path]:
    return sorted(CONFIG_DIR.rglob("*.yaml"))


def test_no_shipped_config_forces_a_precision():
    assert len(_shipped_configs()) >= 7
    for path in _shipped_configs():
        data = yaml.safe_load(path.read_text())
        assert (data.get("train") or {}).get("precision", "auto") == "auto", path
        overrides = [*(data.get("run") or {}).get("overrides", ())] + [
            o for g in ((data.get("grid") or {}).get("per_strategy") or {}).values()
            for o in g.get("overrides", ())]
        assert not [o for o in overrides if o.startswith("train.precision")], path
    for name in ("tiny", "small", "default", "large"):
        assert load_run_config(name).train.precision == "auto"


def test_run_and_summary_record_the_precision_and_why(tiny_run):
    import json

    for name in ("run.json", "summary.json"):
        record = json.loads((tiny_run / name).read_text())
        assert record["precision"] == "fp32", name
        assert "AMX" in record["precision_reason"] and record["precision_reason"].startswith("auto")
