"""The `asr` command: parses arguments and calls the library; no logic of its own.

The `synth` and `prepare` subcommands also reach into `data_prep/` (importing a corpus is the
one step that sits above the library); those imports are local to the subcommands.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def parse_hours(spec: str | None) -> dict[str, float]:
    """'zh-CN=0.5,de=1' -> {'zh-CN': 0.5, 'de': 1.0}."""
    if not spec:
        return {}
    hours = {}
    for item in spec.split(","):
        locale, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            hours[locale.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad --hours item {item!r}: expected LOCALE=HOURS, e.g. zh-CN=0.5"
            ) from None
    return hours


def parse_locales(spec: str) -> list[str]:
    return [x.strip() for x in spec.split(",") if x.strip()]


def _formatter(prog):
    return argparse.ArgumentDefaultsHelpFormatter(prog, max_help_position=32)


def add_synth(sub) -> None:
    p = sub.add_parser(
        "synth",
        formatter_class=_formatter,
        help="synthesise a speech corpus in Common Voice's release layout (eSpeak NG)",
        description="Write a synthetic corpus laid out exactly like a Common Voice release "
        "(<out>/<locale>/clips/*.mp3 and train/dev/test/validated tsv files).",
    )
    p.add_argument("--out", required=True, type=Path, help="release root to write")
    p.add_argument("--locales", default="de,fr,es,it,en,zh-CN", help="comma-separated locales")
    p.add_argument("--hours", default="", help="train hours per locale, e.g. de=0.5,zh-CN=0.2")
    p.add_argument("--default-hours", type=float, default=0.1,
                   help="train hours for locales not named in --hours")
    p.add_argument("--eval-hours", type=float, default=0.05, help="hours each of dev and test")
    p.add_argument("--zh-inventory", type=int, default=300,
                   help="number of distinct Chinese characters the zh-CN text draws from")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (bit-exact output per seed)")
    p.add_argument("--workers", type=int, default=1, help="synthesis processes")
    p.set_defaults(func=run_synth)


def run_synth(args) -> int:
    from data_prep.synth import synthesize_corpus

    locales = parse_locales(args.locales)
    hours = {loc: args.default_hours for loc in locales} | parse_hours(args.hours)
    summary = synthesize_corpus(
        args.out,
        locales=locales,
        hours=hours,
        seed=args.seed,
        eval_hours=args.eval_hours,
        workers=args.workers,
        zh_inventory_size=args.zh_inventory,
    )
    print(summary.get("table", ""))
    return 0


def add_prepare(sub) -> None:
    p = sub.add_parser(
        "prepare",
        formatter_class=_formatter,
        help="import a Common Voice release: manifests, tokenizers, feature cache",
        description="Read a Common Voice release (real or synthetic), write JSONL manifests "
        "<out>/<locale>/{train,dev,test}.jsonl, train one tokenizer per language and cache "
        "log-mel features for every split.",
    )
    p.add_argument("--cv-root", required=True, type=Path, help="Common Voice release root")
    p.add_argument("--locales", required=True, help="comma-separated locales, e.g. de,fr,zh-CN")
    p.add_argument("--out", default=Path("data"), type=Path, help="data directory to write")
    p.add_argument("--hours", default="",
                   help="training hours per locale, e.g. zh-CN=0.5,de=1 (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the hours subset")
    p.add_argument("--train-source", choices=("train", "validated"), default="train",
                   help="training pool: train.tsv, or validated.tsv minus dev/test "
                   "speakers, clips and sentences")
    p.add_argument("--vocab-size", type=int, default=256,
                   help="subword vocabulary size for alphabetic languages")
    p.add_argument("--zh-units", choices=("char", "pinyin"), default="char",
                   help="zh-CN output units: characters, or toned pinyin syllables")
    p.add_argument("--workers", type=int, default=2, help="feature-extraction processes")
    p.add_argument("--no-features", action="store_true", help="skip the feature cache")
    p.set_defaults(func=run_prepare)


def run_prepare(args) -> int:
    from asr.prepare import prepare_data
    from data_prep.manifest import format_summary, prepare_manifests

    locales = parse_locales(args.locales)
    manifest_summary = prepare_manifests(
        args.cv_root,
        locales=locales,
        out_dir=args.out,
        hours=parse_hours(args.hours),
        seed=args.seed,
        train_source=args.train_source,
    )
    print(format_summary(manifest_summary))
    report = prepare_data(
        args.out,
        locales=locales,
        vocab_size=args.vocab_size,
        zh_units=args.zh_units,
        workers=args.workers,
        features=not args.no_features,
    )
    print(report["table"])
    return 0


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        formatter_class=_formatter,
        help="train a multilingual CTC model (also fine-tuning and resume)",
        description="Train one shared encoder with a CTC head per language on prepared data. "
        "Fine-tuning is the same command with --init. Runs under torchrun for "
        "DistributedDataParallel (gloo on CPU, NCCL on GPUs).",
    )
    p.add_argument("--config", default="default",
                   help="YAML config: a path, or the name of a shipped config (asr/configs)")
    p.add_argument("--data", default=Path("data"), type=Path, help="prepared data directory")
    p.add_argument("--locales", required=True, help="comma-separated locales to train on")
    p.add_argument("--out", required=True, type=Path, help="run directory to write")
    p.add_argument("--init", type=Path, default=None,
                   help="start from this model (run dir or model file); new languages get new heads")
    p.add_argument("--freeze", default="",
                   help="comma-separated parameter prefixes to freeze; 'encoder' = all but the heads")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=1e-3 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    import torch

    from asr.config import load_run_config
    from asr.train import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_run_config(args.config, args.overrides)
    trainer = Trainer(cfg, data_dir=args.data, locales=parse_locales(args.locales),
                      out_dir=args.out, init=args.init, freeze_prefixes=parse_locales(args.freeze),
                      resume=args.resume, device=args.device)
    summary = trainer.fit()
    if trainer.dist.main:
        print("\n".join(f"{k:>28}: {v}" for k, v in summary.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr",
        formatter_class=_formatter,
        description="polyglot-asr: multilingual CTC speech recognition with a shared encoder.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_synth(sub)
    add_prepare(sub)
    add_train(sub)
    return parser


def _version() -> str:
    from asr import __version__

    return f"polyglot-asr {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from asr.audio import AudioError
    from asr.checkpoint import CheckpointError
    from asr.config import ConfigError

    try:
        return args.func(args)
    except (ConfigError, CheckpointError, AudioError, FileNotFoundError, ValueError) as e:
        if os.environ.get("ASR_DEBUG"):
            raise
        print(f"asr {args.command}: error: {e}  (ASR_DEBUG=1 shows a traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
