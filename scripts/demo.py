"""The polyglot-asr demo: a tiny five-language corpus from nothing.

Usage:
    python scripts/demo.py [--corpus corpora/cv-synth] [--data data] [--workers 2]
    (or simply `make demo`, which installs first)

Steps (each skipped when its outputs are already there and up to date):
    1. synthesise a small Common Voice-style release (de, fr, es, it, zh-CN) with eSpeak NG;
    2. import it: manifests, tokenizers, log-mel feature cache.
"""

from __future__ import annotations

import argparse
import sys
import time

from asr.cli import main as asr

LOCALES = "de,fr,es,it,zh-CN"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--corpus", default="corpora/cv-synth", help="where the synthetic release goes")
    p.add_argument("--data", default="data", help="where manifests, tokenizers and features go")
    p.add_argument("--hours", type=float, default=0.05, help="train hours per language")
    p.add_argument("--eval-hours", type=float, default=0.02, help="dev and test hours each")
    p.add_argument("--workers", type=int, default=2, help="processes for synthesis and features")
    return p.parse_args(argv)


def step(title: str, argv: list[str]) -> None:
    print(f"\n== {title}\n$ asr {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    rc = asr(argv)
    if rc:
        sys.exit(rc)
    print(f"({time.perf_counter() - t0:.1f} s)")


def main(argv=None) -> None:
    args = parse_args(argv)
    step("1. synthesise a Common Voice-style corpus", [
        "synth", "--out", args.corpus, "--locales", LOCALES,
        "--default-hours", str(args.hours), "--eval-hours", str(args.eval_hours),
        "--workers", str(args.workers),
    ])
    step("2. prepare: manifests, tokenizers, feature cache", [
        "prepare", "--cv-root", args.corpus, "--locales", LOCALES, "--out", args.data,
        "--workers", str(args.workers),
    ])
    print(f"\nDone. Corpus in {args.corpus}/, prepared data in {args.data}/.")


if __name__ == "__main__":
    main()
