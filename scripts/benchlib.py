"""Measuring tools for scripts/bench.py: timing, statistics, FLOPs, matmul peak, peak memory.

Not a script of its own: scripts/bench.py imports it (scripts/ is on sys.path when a script
there runs).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from asr.device import cpu_bf16_features, cpu_model

MATMUL_MIN_SECONDS = 0.3  # each matmul-peak sample runs at least this long


def summarize(values: list[float]) -> dict:
    """Median, extremes and relative spread ((max - min) / median) of repeated measurements."""
    values = [float(v) for v in values]
    med = statistics.median(values)
    return {"median": med, "min": min(values), "max": max(values),
            "spread": (max(values) - min(values)) / med if med else 0.0, "runs": values}


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class Timer:
    """Wall and process-CPU seconds of a block; cpu_share says how much of `threads` cores the
    process got (well under 1 on a machine shared with other jobs)."""

    def __init__(self, device: torch.device | str = "cpu", threads: int = 1):
        self.device, self.threads = device, threads

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        synchronize(self.device)
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        self.cpu_share = self.cpu / max(self.wall * self.threads, 1e-9)


def machine_description(threads: int) -> dict:
    """CPU model, cores, memory, versions and load: what a reader needs to compare figures."""
    cpu = cpu_model()
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        memory_gb = pages * page_size / 2**30
    except (ValueError, OSError, AttributeError):
        memory_gb = None
    desc = {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": memory_gb,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_bf16": cpu_bf16_features(), "cpu_flags": cpu_flags(),
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "torch_threads": threads,
            "torch_interop_threads": torch.get_num_interop_threads(),
            "platform": platform.platform(), "load_average_start": os.getloadavg()}
    if torch.cuda.is_available():
        desc["cuda"] = torch.cuda.get_device_name(0)
    return desc


def cpu_flags() -> list[str]:
    """The CPU's SIMD and matrix flags that decide kernel speed (from /proc/cpuinfo)."""
    wanted = {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16",
              "amx_int8", "asimd", "sve", "bf16"}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            line = next((x for x in f if x.startswith(("flags", "Features"))), "")
    except OSError:
        return []
    return sorted(set(line.partition(":")[2].split()) & wanted)


def matmul_peak(dtype: torch.dtype, device: torch.device | str = "cpu", n: int = 2048,
                repeats: int = 5) -> dict:
    """FLOP/s of an (n, n) @ (n, n) matmul in `dtype`, several samples: the attainable peak."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    c = torch.mm(a, b)
    flops = 2 * n**3
    calls = 1
    with Timer(device) as t:  # size each sample to last MATMUL_MIN_SECONDS
        torch.mm(a, b, out=c)
    calls = max(1, int(MATMUL_MIN_SECONDS / max(t.wall, 1e-6)))
    rates, cpu_rates = [], []
    for _ in range(repeats):
        with Timer(device) as t:
            for _ in range(calls):
                torch.mm(a, b, out=c)
        rates.append(flops * calls / t.wall)
        cpu_rates.append(flops * calls / max(t.cpu, 1e-9))
    return summarize(rates) | {"n": n, "dtype": str(dtype).replace("torch.", ""),
                               "per_cpu_second": summarize(cpu_rates)}


def _shapes(args) -> list[tuple[int, ...]]:
    return [tuple(a) if isinstance(a, torch.Size | tuple | list) else a for a in args]


def _cpu_flash(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_flash_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# PyTorch's counter knows the CUDA attention kernels but not the CPU one SDPA dispatches to;
# without these entries attention would count as zero FLOPs on the CPU.
_CPU_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward,
}


def count_flops(fn: Callable[[], object]) -> tuple[int, object]:
    """FLOPs of the matmuls, convolutions and attention `fn` runs (torch.utils.flop_counter),
    and fn's result. Elementwise work (norms, activations, optimizer) is not counted."""
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION) as counter:
        result = fn()
    return counter.get_total_flops(), result


def fit_exponent(xs: list[float], ys: list[float]) -> float:
    """Slope of log y against log x (least squares): 1.0 means y grows linearly with x."""
    slope, _ = np.polyfit(np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float)), 1)
    return float(slope)


def vm_hwm_bytes() -> int:
    """This process's peak resident memory since its exec (VmHWM in /proc/self/status).

    Unlike getrusage's ru_maxrss, which Linux carries over from the forking parent's memory
    across exec, VmHWM belongs to the new program only."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise OSError("no VmHWM in /proc/self/status")


def child_peak_rss(argv: list[str], env: dict | None = None) -> tuple[int, dict]:
    """Run `python argv...` and return (its ru_maxrss in bytes from os.wait4, the JSON object it
    printed last). ru_maxrss is at least the parent's resident size at fork (Linux keeps the
    forked copy's high-water mark through exec), so a child reports its own VmHWM as well."""
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True,
                            env=env)
    out = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if proc.returncode:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return usage.ru_maxrss * 1024, json.loads(lines[-1]) if lines else {}  # Linux: KiB


def fmt(summary: dict, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    """'median (min-max)' for a summary, numbers times `scale`."""
    m, lo, hi = (summary[k] * scale for k in ("median", "min", "max"))
    return f"{m:.{digits}f}{unit} ({lo:.{digits}f}-{hi:.{digits}f})"
