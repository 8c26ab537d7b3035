"""Where and how a model runs: the device, the training precision the hardware supports
natively, the CPU allocator, and how many threads a job gets.

Precision follows the hardware. bf16 autocast pays only where the hardware computes in bf16:
on a CPU with AMX or AVX512-BF16, and on a GPU that supports it. Elsewhere it is emulated:
measured on an AVX2-only AMD EPYC (Zen 3), bf16 training ran 6x slower than fp32 and a bf16
matmul 40x slower. So `auto` picks bf16 only where it is native, fp16 (with a loss scaler) on
a GPU without bf16, and fp32 everywhere else (and for narrow models on a CPU with AVX512-BF16
but no AMX, where bf16 measured slower: MIN_BF16_WIDTH_WITHOUT_AMX); an explicit `bf16` on a
CPU without native support is obeyed with a one-time warning saying what it costs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import functools
import os
import platform
import sys
import warnings

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}  # by name
BF16_EMULATED_SLOWDOWN = 6  # x slower than fp32: bf16 training on an AVX2-only CPU (measured)


def available_devices() -> list[str]:
    """The devices this process can compute on, for messages: cpu and each visible GPU."""
    return ["cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]


def resolve_device(name: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """'auto' -> cuda when a GPU is visible, else cpu; 'cuda' -> this rank's GPU.

    A device this machine lacks (cuda without CUDA, cuda:3 with two GPUs, a misspelling) is a
    one-line ValueError naming it and the available devices, never a traceback from deep
    inside torch at the first tensor moved there."""
    asked = str(name)
    if asked == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if str(name) == "cuda":
        name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device {asked!r} is not a device name ({e}); available: "
                         f"{', '.join(available_devices())}") from None
    if device.type == "cuda" and (not torch.cuda.is_available()
                                  or (device.index or 0) >= torch.cuda.device_count()):
        raise ValueError(f"device {asked!r} is not available on this machine "
                         f"({'no CUDA GPU visible' if not torch.cuda.is_available() else 'no such GPU'}); "
                         f"available: {', '.join(available_devices())} (or use --device auto)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {asked!r} is not supported here; available: "
                         f"{', '.join(available_devices())}")
    return device


def cpu_bf16_features() -> list[str]:
    """The CPU's native bf16 instruction sets that torch can use: AMX tiles, AVX512-BF16."""
    found = []
    if torch.cpu._is_amx_tile_supported():
        found.append("AMX")
    if torch.cpu._is_avx512_bf16_supported():
        found.append("AVX512-BF16")
    return found


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """(does this device compute in bf16 natively, why)."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported(including_emulation=False)
        return ok, f"{torch.cuda.get_device_name(device)} {'supports' if ok else 'lacks'} bf16"
    if device.type == "cpu":
        found = cpu_bf16_features()
        if found:
            return True, f"CPU has {' and '.join(found)}"
        return False, (f"CPU has neither AMX nor AVX512-BF16 (torch's CPU capability: "
                       f"{torch.backends.cpu.get_cpu_capability()})")
    return False, f"no bf16 check for device type {device.type!r}"


@dataclasses.dataclass(frozen=True)
class Precision:
    """The precision a run computes in: `name` (fp32, bf16, fp16), the autocast dtype (None for
    fp32), and why it was chosen."""

    name: str
    reason: str

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return None if self.name == "fp32" else DTYPES[self.name]

    def to_dict(self) -> dict:
        return {"precision": self.name, "precision_reason": self.reason}


# bf16 on a CPU with AVX512-BF16 but no AMX (AMD EPYC Zen 4) pays only for wide enough
# models. Measured there, one torch thread, fp32 against bf16 interleaved (scripts/ab_speed.py
# cases, beside two other single-threaded jobs): the small config (d_model 144) trained at
# 0.82x fp32's speed in bf16 (72 against 87 audio-s/s), the default (d_model 256) at 1.32x.
MIN_BF16_WIDTH_WITHOUT_AMX = 256


def choose_precision(requested: str, device: torch.device, width: int | None = None) -> Precision:
    """The config's `train.precision` on this device: `auto` by capability (and, on a CPU with
    AVX512-BF16 but no AMX, by the model's `width`, its d_model), others as asked."""
    if requested != "auto" and requested not in DTYPES:
        raise ValueError(f"precision {requested!r} is not one of {['auto', *DTYPES]}")
    native, why = native_bf16(device)
    if requested == "auto":
        if (native and device.type == "cpu" and "AMX" not in cpu_bf16_features()
                and width is not None and width < MIN_BF16_WIDTH_WITHOUT_AMX):
            return Precision("fp32", f"auto: {why} but no AMX, and at d_model {width} "
                                     f"(< {MIN_BF16_WIDTH_WITHOUT_AMX}) bf16 measured slower there")
        if native:
            return Precision("bf16", f"auto: {why}")
        if device.type == "cuda":
            return Precision("fp16", f"auto: {why}; fp16 with a loss scaler")
        return Precision("fp32", f"auto: {why}, so bf16 would be emulated")
    if requested == "bf16" and not native:
        _warn_emulated_bf16(why)
        return Precision("bf16", f"asked for; emulated: {why}")
    return Precision(requested, "asked for")


@functools.cache
def _warn_emulated_bf16(why: str) -> None:
    warnings.warn(f"train.precision=bf16 on hardware without native bf16 ({why}): autocast runs "
                  f"emulated kernels, measured about {BF16_EMULATED_SLOWDOWN}x slower than fp32. "
                  "Use train.precision=auto or fp32.", stacklevel=3)


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of returning it to the kernel.

    glibc serves large blocks (above a threshold that grows to 32 MB) with mmap and unmaps
    them on free, so every training step faulted in fresh zeroed pages for its large
    activations: an elementwise op on a 120 MB tensor took 127 ms instead of 20 ms (AMD EPYC,
    measured). With mmap off and trimming raised, the heap keeps its pages, as PyTorch's CUDA
    caching allocator does on GPUs. Returns False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**30))


def cpu_model() -> str:
    """The CPU's model name ("AMD EPYC", "Intel(R) Xeon(R) Platinum 8488C", ...)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name")), name)
    except OSError:
        pass
    return name


def machine_name(device: torch.device) -> str:
    """What a figure was measured on: the GPU's name, or the CPU model and its core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {cpu_cores()} cores"


def cpu_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


EVAL_BATCH_FRAMES = {"cpu": 6000, "cuda": 40000}  # padded 10 ms input frames per inference batch


def eval_batch_frames(device: torch.device) -> int:
    """Frames per inference batch: small on a CPU, where a batch's activations then stay in
    cache (measured 1.7x faster forward at 6000 frames than at 40000, one core); large on a GPU."""
    return EVAL_BATCH_FRAMES.get(device.type, EVAL_BATCH_FRAMES["cuda"])


@dataclasses.dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (one process, rank 0, when not under torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Dist:
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def main(self) -> bool:
        return self.rank == 0
