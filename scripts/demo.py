"""The polyglot-asr demo: does European speech make Mandarin cheaper to learn?

Usage:
    python scripts/demo.py [--corpus corpora/cv-synth-demo] [--out exp/transfer_demo]
                           [--config transfer_demo] [--jobs 2] [--clips 2]
    (or simply `make demo`, which installs first)

Steps (each skipped when its outputs are already there and up to date):
    1. synthesise a small Common Voice-style release (de, es, zh-CN) with eSpeak NG;
    2. run the transfer experiment asr/configs/experiments/transfer_demo.yaml: Mandarin
       trained alone (0.1 and 0.3 h) and fine-tuned from a model of German and Spanish
       (0.1 h), all under one early-stopping budget; report and plot (live progress of the
       running runs on a terminal);
    3. transcribe a few held-out test clips in each language with a trained model, printing
       reference and hypothesis, and an untrained model's CER for comparison;
    4. print the results and where the report and the plot are.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

from asr.cli import main as asr

# Prefer a model that holds all five languages (the helpers' heads stay exact in progressive).
MODEL_PREFERENCE = ("progressive", "joint", "finetune", "progressive_nolateral", "target_only")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--corpus", default="corpora/cv-synth-demo", help="where the synthetic release goes")
    p.add_argument("--out", default="exp/transfer_demo", help="experiment directory")
    p.add_argument("--config", default="transfer_demo", help="experiment config (name or path)")
    p.add_argument("--jobs", type=int, default=2,
                   help="runs trained at once, one thread each (the number of CPU cores)")
    p.add_argument("--clips", type=int, default=2, help="test clips transcribed per language")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an experiment value (repeatable)")
    return p.parse_args(argv)


def pick_run(report: dict) -> dict:
    """The run whose model shows the most languages, at the most target hours."""
    runs = [r for r in report["runs"] if r["strategy"] in MODEL_PREFERENCE]
    return min(runs, key=lambda r: (MODEL_PREFERENCE.index(r["strategy"]), -r["target_hours"],
                                    r["seed"]))


def transcribe_examples(run: dict, helpers: dict | None, clips: int, target: str) -> None:
    """A few test clips per language: the target with `run`'s model; the helper languages with
    the helpers' own model when there is one (fine-tuning on the target degrades their heads)."""
    from asr import load_model

    data = Path(json.loads((Path(run["run_dir"]) / "job.json").read_text())["data"])
    model = load_model(run["run_dir"])
    own = load_model(helpers["run_dir"]) if helpers else model
    print(f"{target}: {run['run_dir']} ({run['strategy']}, {run['target_hours']:g} h of {target})")
    if helpers:
        print(f"others: {helpers['run_dir']} (the helpers' model it started from)")
    for locale in model.languages:
        m = own if locale in own.languages and locale != target else model
        rows = [json.loads(x) for x in (data / locale / "test.jsonl").read_text().splitlines()]
        for r in rows[:clips]:
            hyp = m.transcribe(r["audio"], lang=locale).text
            print(f"  [{locale}] {Path(r['audio']).name}\n      ref: {r['norm_text']}\n      hyp: {hyp}")


def untrained_cer(run: dict, target: str) -> float:
    """CER of the same architecture with fresh random weights on the same target test set."""
    import torch

    from asr.decode import Decoder
    from asr.evaluate import decode_split, score
    from asr.model.multilingual import MultilingualCTC
    from asr.package import load_package_model

    _, package = load_package_model(run["run_dir"])
    torch.manual_seed(0)
    fresh = MultilingualCTC(package.config.model, {target: package.tokenizers[target].vocab_size})
    fresh.eval()
    data = Path(json.loads((Path(run["run_dir"]) / "job.json").read_text())["data"])
    rows = decode_split(fresh, package, data, target, "test", Decoder(package.tokenizers),
                        torch.device("cpu"))["rows"]
    return score([(r["id"], r["reference"], r["hypothesis"]) for r in rows], target)["cer"]


def constant_output_cer(run: dict, target: str) -> float:
    """CER of always answering the most frequent target training transcript."""
    from asr.evaluate import score

    data = Path(json.loads((Path(run["run_dir"]) / "job.json").read_text())["data"]) / target
    train = [json.loads(x)["norm_text"] for x in (data / "train.jsonl").read_text().splitlines()]
    guess = max(sorted(set(train)), key=train.count)
    test = [json.loads(x)["norm_text"] for x in (data / "test.jsonl").read_text().splitlines()]
    return score([("", ref, guess) for ref in test], target)["cer"]


def main(argv=None) -> None:
    args = parse_args(argv)
    t0 = time.perf_counter()
    argv = ["experiment", "--config", args.config, "--out", args.out, "--jobs", str(args.jobs),
            "--set", f"corpus.root={args.corpus}"]
    for item in args.overrides:
        argv += ["--set", item]
    print(f"== 1-2. synthesise the corpus and run the transfer experiment\n$ asr {' '.join(argv)}",
          flush=True)
    rc = asr(argv)
    if rc:
        sys.exit(rc)
    out = Path(args.out)
    report = json.loads((out / "report.json").read_text())
    target = yaml.safe_load((out / "experiment.yaml").read_text())["target"]["locale"]
    run = pick_run(report)
    helpers = None if run["strategy"] == "progressive" else next(
        (r for r in report["runs"] if r["strategy"] == "pretrain" and r["seed"] == run["seed"]), None)

    print("\n== 3. held-out test clips, reference and hypothesis", flush=True)
    transcribe_examples(run, helpers, args.clips, target)
    baseline = next((r for r in report["runs"] if r["strategy"] == "target_only"), run)
    print(f"\nFor comparison, on the same {target} test set an untrained model of the same "
          f"shape scores {100 * untrained_cer(baseline, target):.1f}% CER (random weights emit "
          f"wrong characters), and always answering the most frequent training sentence "
          f"{100 * constant_output_cer(baseline, target):.1f}%.")

    print("\n== 4. results\n")
    md = (out / "results.md").read_text(encoding="utf-8")
    print(md.split("\n## Every run")[0].rstrip())
    print(f"\nreport: {out / 'results.md'} (every run, data, versions; results.csv for programs)")
    print(f"plot:   {out / 'cer_vs_hours.png'}")
    print(f"demo wall time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
