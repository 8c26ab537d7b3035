"""Training throughput of a config on prepared data, fp32 against bf16 autocast, one run.

Usage:
    python scripts/bench_train.py --data data --locales de,zh-CN [--config default]
        [--steps 20] [--warmup 3] [--repeats 3] [--threads 2] [--out bench/train.json]

Both precisions are measured in the same process, alternately, so their ratio is fair on a
shared machine; absolute figures drift with the machine's load. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from asr.config import load_run_config
from asr.fileio import write_json
from asr.model.multilingual import count_parameters
from asr.train import Trainer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="data", help="prepared data directory")
    p.add_argument("--locales", default="de,zh-CN", help="languages to draw batches from")
    p.add_argument("--config", default="default", help="run config (name or path)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    p.add_argument("--steps", type=int, default=20, help="timed updates per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed updates first")
    p.add_argument("--repeats", type=int, default=3, help="measurements per precision")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--out", default="bench/train.json", help="JSON results file")
    return p.parse_args(argv)


def measure(trainer: Trainer, steps: int) -> float:
    """Audio seconds trained per wall second over `steps` updates."""
    t0, audio = time.perf_counter(), 0.0
    for _ in range(steps):
        audio += trainer.update()["audio_seconds"]
    return audio / (time.perf_counter() - t0)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    locales = args.locales.split(",")
    trainers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("fp32", "bf16"):
            cfg = load_run_config(args.config, [*args.overrides, f"train.precision={precision}",
                                                "train.max_steps=100000"])
            trainers[precision] = Trainer(cfg, args.data, locales, f"{tmp}/{precision}",
                                          progress=False)
            for _ in range(args.warmup):
                trainers[precision].update()
        results = {p: [] for p in trainers}
        for _ in range(args.repeats):
            for precision, trainer in trainers.items():
                results[precision].append(measure(trainer, args.steps))
    params = count_parameters(trainers["fp32"].model)
    summary = {"config": args.config, "overrides": args.overrides, "parameters": params,
               "threads": args.threads, "steps": args.steps,
               "audio_seconds_per_second": {p: {"median": statistics.median(v), "runs": v}
                                            for p, v in results.items()}}
    ratio = (summary["audio_seconds_per_second"]["bf16"]["median"]
             / summary["audio_seconds_per_second"]["fp32"]["median"])
    summary["bf16_speedup"] = ratio
    print(f"config {args.config}: {params / 1e6:.2f} M parameters, {args.threads} threads")
    print("| precision | audio s / s (median) | runs |\n|---|---|---|")
    for p, v in results.items():
        print(f"| {p} | {statistics.median(v):.1f} | {', '.join(f'{x:.1f}' for x in v)} |")
    print(f"bf16 / fp32 = {ratio:.2f}x")
    write_json(args.out, summary)


if __name__ == "__main__":
    main()
