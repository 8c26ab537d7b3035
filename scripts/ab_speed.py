"""A/B training throughput: this checkout against an earlier commit, interleaved on one machine.

Usage:
    python scripts/ab_speed.py --base c43e167 [--rounds 3] [--work bench/tmp/ab]
        [--out bench/ab] [--cases small_steps,small_run,default_steps]

Each round runs every case once with the old code and once with this checkout, alternating,
as separate `asr train` processes with one torch thread (figures are per core), so a change
in machine load during the measurement hits both sides alike. A case's figure is the run's
own audio-seconds per second (metrics.jsonl, from the start of its training loop), so process
start and data loading are outside it and validations inside it. Cases:

    small_steps    the experiment model (d144 x 4, 1.4 M parameters), training steps only
    small_run      the same model as the transfer sweep trains it: zh-CN only, validation
                   every 100 updates on a 0.42 h dev set (transfer_full's rhythm)
    default_steps  the default config (5 M parameters), training steps only
    small_as_shipped  once, not interleaved: the old code with the precision its experiment
                   configs forced (bf16), to show what a user on this CPU got

Writes <out>/ab.json (every run) and <out>/ab.md (the table, the CPU and its flags).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["model.d_model=144", "model.n_heads=4", "model.layout=[0,4,0]", "model.conv_kernel=15",
         "model.subsampling_channels=32", "model.dropout=0.1", "data.batch_frames=3000",
         "train.lr=5e-4", "train.warmup_steps=200"]  # the experiment model, as `tiny` + overrides
STEPS_ONLY = ["train.valid_every=1000000", "train.log_every=10"]
CASES = {  # name: (base config, locales, overrides)
    "small_steps": ("tiny", "de,zh-CN", SMALL + STEPS_ONLY + ["train.max_steps=150"]),
    "small_run": ("tiny", "zh-CN", SMALL + ["train.valid_every=100", "train.log_every=10",
                                            "train.max_steps=310"]),
    "default_steps": ("default", "de,zh-CN", STEPS_ONLY + ["train.max_steps=10",
                                                           "train.log_every=5"]),
}
CORPUS = {"hours": "de=0.5,zh-CN=0.5", "eval_hours": "0.42"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--base", required=True, help="git revision to compare against")
    p.add_argument("--rounds", type=int, default=3, help="interleaved old/new rounds")
    p.add_argument("--work", default="bench/tmp/ab", help="corpus, data and scratch runs")
    p.add_argument("--out", default="bench/ab", help="where ab.json and ab.md go")
    p.add_argument("--cases", default=",".join(CASES), help="cases to run (see above)")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite ab.md from an existing ab.json in --out")
    p.add_argument("--as-shipped", action="store_true",
                   help="also time the old code once with the bf16 its experiment configs forced")
    return p.parse_args(argv)


def checkout(rev: str, dest: Path) -> Path:
    """The tree of `rev`, exported (not a worktree: nothing to clean up in .git)."""
    if not (dest / "asr").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                                 capture_output=True).stdout
        with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
    return dest


def asr(code: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "asr.cli", *args], env=env, check=True,
                          capture_output=True, text=True, cwd=code)


def prepare(work: Path) -> Path:
    """A corpus with transfer_full's dev-set size, prepared once by this checkout."""
    data = work / "data"
    if not (data / "zh-CN" / "dev.jsonl").exists():
        corpus = work / "corpus"
        asr(ROOT, "synth", "--out", str(corpus.resolve()), "--locales", "de,zh-CN", "--hours",
            CORPUS["hours"], "--eval-hours", CORPUS["eval_hours"], "--zh-inventory", "150",
            "--workers", str(os.cpu_count() or 1))
        asr(ROOT, "prepare", "--cv-root", str(corpus.resolve()), "--locales", "de,zh-CN",
            "--out", str(data.resolve()), "--units", "char", "--workers", str(os.cpu_count() or 1))
    return data.resolve()


def train(code: Path, case: str, data: Path, extra: list[str] = ()) -> dict:
    """One `asr train` run of a case; its end-of-loop throughput and what it ran with."""
    base, locales, overrides = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        sets = [x for o in [*overrides, *extra] for x in ("--set", o)]
        asr(code, "train", "--config", base, "--data", str(data), "--locales", locales,
            "--out", tmp, "--device", "cpu", *sets)
        rows = [json.loads(x) for x in Path(tmp, "metrics.jsonl").read_text().splitlines()]
        described = json.loads(Path(tmp, "run.json").read_text())
    last = [r for r in rows if r.get("kind") == "train"][-1]
    return {"audio_seconds_per_second": last["audio_seconds_per_second"], "step": last["step"],
            "validations": sum(r.get("kind") == "valid" and r["step"] < last["step"] for r in rows),
            "precision": _precision(described)}


def _precision(described: dict) -> str:
    """run.json's precision; before it recorded one, its autocast dtype (None: fp32)."""
    if "precision" in described:
        return described["precision"]
    return {"None": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(
        str(described.get("autocast")), str(described.get("autocast")))


def cpu_description() -> dict:
    info = {}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            key, _, value = line.partition(":")
            info[key.strip()] = value.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    flags = set(info.get("Flags", "").split())
    return {"model": info.get("Model name", "unknown"), "cores": os.cpu_count(),
            "native_bf16": sorted(flags & {"amx_tile", "amx_bf16", "avx512_bf16"}),
            "simd": sorted(flags & {"avx2", "avx512f", "fma"})}


def markdown(r: dict) -> str:
    cpu = r["cpu"]
    lines = [f"# Training throughput A/B: {r['base']} (old) against {r['head']} (new)", "",
             f"CPU: {cpu['model']}, {cpu['cores']} cores; SIMD {', '.join(cpu['simd'])}; native "
             f"bf16: {', '.join(cpu['native_bf16']) or 'none'}. One torch thread per run, "
             f"{r['rounds']} interleaved rounds: median (min-max) audio-seconds per second.", "",
             "| case | old | new | new / old |", "|---|---|---|---|"]
    for case, runs in r["cases"].items():
        old = [x["audio_seconds_per_second"] for x in runs["old"]]
        new = [x["audio_seconds_per_second"] for x in runs["new"]]
        ratios = [n / o for n, o in zip(new, old, strict=True)]
        prec = f"{_label(runs['old'][0]['precision'])} / {_label(runs['new'][0]['precision'])}"
        lines.append(f"| {case} ({prec}) | {_fmt(old)} | {_fmt(new)} | {_fmt(ratios, 2)}x |")
    if "small_as_shipped" in r:
        s = r["small_as_shipped"]
        lines.append(f"| small_steps, old as shipped ({_label(s['precision'])}) | "
                     f"{s['audio_seconds_per_second']:.1f} | | |")
    return "\n".join(lines) + "\n"


def _label(precision: str | None) -> str:
    return {None: "fp32", "None": "fp32"}.get(precision, precision)


def _fmt(values: list[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.report_only:
        result = json.loads((Path(args.out) / "ab.json").read_text())
        (Path(args.out) / "ab.md").write_text(markdown(result), encoding="utf-8")
        return print(markdown(result))
    work = Path(args.work)
    old = checkout(args.base, work / f"code-{args.base}")
    data = prepare(work)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    cases = [c for c in args.cases.split(",") if c]
    result = {"base": args.base, "head": head + " (+ working tree)", "rounds": args.rounds,
              "cpu": cpu_description(), "cases": {c: {"old": [], "new": []} for c in cases}}
    fp32 = ["train.precision=fp32"]  # the old code's `auto` meant bf16 on every CPU
    for r in range(args.rounds):
        for case in cases:
            for side, code, extra in (("old", old, fp32), ("new", ROOT, [])):
                run = train(code, case, data, extra)
                result["cases"][case][side].append(run)
                print(f"round {r + 1}/{args.rounds} {case} {side}: "
                      f"{run['audio_seconds_per_second']:.1f} audio-s/s ({run['precision']})",
                      flush=True)
    if args.as_shipped:
        result["small_as_shipped"] = train(old, "small_steps", data,
                                           ["train.precision=bf16", "train.max_steps=30"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (out / "ab.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
