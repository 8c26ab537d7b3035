"""Smoke test: the benchmark script runs end to end at its tiny setting (no time is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_writes_every_figure(tmp_path):
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick",
                    "--work", str(tmp_path / "work"), "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True, text=True, timeout=300)
    r = json.loads((out / "results.json").read_text())
    assert r["machine"]["torch_threads"] == 1
    for key in ("synthesis_x_real_time_per_core", "preparation_x_real_time_per_core",
                "training", "transcription", "peak_memory", "scaling"):
        assert key in r, key
    train = r["training"]["cpu"]["tiny"]
    assert train["flops_per_audio_second"] > 0
    native = train["precision_auto"]["precision"]  # bf16 on a CPU with AMX or AVX512-BF16
    assert set(train["utilisation"]) >= {"fp32", "fp32_cpu_time", native}
    assert train["pipeline_efficiency"]["median"] > 0
    assert set(r["transcription"]["rtf_long"]) == {"greedy", "beam", "beam_lm"}
    assert set(r["scaling"]) == {"training", "transcription"}
    assert len(r["targets"]) == 7
    md = (out / "results.md").read_text()
    assert "| target | goal | measured | met |" in md


def test_fit_exponent_and_summary():
    sys.path.insert(0, str(ROOT / "scripts"))
    from benchlib import fit_exponent, summarize

    assert abs(fit_exponent([1, 2, 4, 8], [3, 6, 12, 24]) - 1.0) < 1e-9
    assert abs(fit_exponent([1, 2, 4], [1, 4, 16]) - 2.0) < 1e-9
    s = summarize([1.0, 3.0, 2.0])
    assert (s["median"], s["min"], s["max"]) == (2.0, 1.0, 3.0)
    assert abs(s["spread"] - 1.0) < 1e-12
