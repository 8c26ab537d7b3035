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


def parse_unit_choice(item: str) -> tuple[str, str]:
    """'zh-CN=pinyin' -> ('zh-CN', 'pinyin'): one --units-for value."""
    locale, sep, kind = item.partition("=")
    if not sep or not locale.strip() or not kind.strip():
        raise argparse.ArgumentTypeError(f"bad --units-for {item!r}: expected LOCALE=KIND, e.g. zh-CN=pinyin")
    return locale.strip(), kind.strip()


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
    p.add_argument("--channel", action="append", default=[], metavar="LOCALE=NAME",
                   help="record every speaker of LOCALE through channel NAME as well "
                        "(telephone: 300-3400 Hz at 5-20 dB SNR), e.g. zh-CN=telephone; "
                        "repeatable")
    p.set_defaults(func=run_synth)


def run_synth(args) -> int:
    from data_prep.synth import synthesize_corpus

    locales = parse_locales(args.locales)
    hours = {loc: args.default_hours for loc in locales} | parse_hours(args.hours)
    channels = {}
    for item in args.channel:
        loc, sep, name = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--channel {item!r}: expected LOCALE=NAME, e.g. zh-CN=telephone")
        channels[loc.strip()] = name.strip()
    summary = synthesize_corpus(
        args.out,
        locales=locales,
        hours=hours,
        seed=args.seed,
        eval_hours=args.eval_hours,
        workers=args.workers,
        zh_inventory_size=args.zh_inventory,
        channels=channels,
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
    p.add_argument("--cv-root", required=True, type=Path, nargs="+", metavar="FOLDER_OR_ARCHIVE",
                   help="Common Voice release folder (<root>/<locale>/clips, TSVs), or one or more "
                   "per-locale archives as downloaded (cv-corpus-<version>-<locale>.tar.gz; "
                   "several per locale for delta releases), read in one streaming pass without "
                   "extracting them")
    p.add_argument("--locales", required=True, help="comma-separated locales, e.g. de,fr,zh-CN")
    p.add_argument("--out", default=Path("data"), type=Path, help="data directory to write")
    p.add_argument("--hours", default="",
                   help="training hours per locale, e.g. zh-CN=0.5,de=1 (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the hours subset")
    p.add_argument("--train-source", choices=("train", "validated"), default="train",
                   help="training pool: train.tsv, or validated.tsv minus dev/test "
                   "speakers, clips and sentences")
    p.add_argument("--vocab-size", type=int, default=256,
                   help="subword vocabulary size with --units unigram or bpe")
    p.add_argument("--units", choices=("char", "unigram", "bpe"), default="char",
                   help="output units of spaced (alphabetic) languages: characters (measured to "
                   "leave CTC's all-blank plateau several times sooner on a few hours of speech), "
                   "or sentencepiece subwords (for tens of hours and more); languages written "
                   "without spaces (zh-CN, ja, th) use characters")
    p.add_argument("--units-for", type=parse_unit_choice, action="append", default=[],
                   metavar="LOCALE=KIND",
                   help="output units of one locale, overriding the above (repeatable): char, "
                   "unigram, bpe, or the language's romanised units, e.g. zh-CN=pinyin for "
                   "toned pinyin syllables")
    p.add_argument("--workers", type=int, default=2, help="feature-extraction processes")
    p.add_argument("--no-features", action="store_true",
                   help="skip the feature cache (release folders only)")
    p.set_defaults(func=run_prepare)


def run_prepare(args) -> int:
    from asr.languages import resolve_units
    from asr.prepare import prepare_data
    from asr.run_lock import FolderLock
    from data_prep.cv_archive import release_archives
    from data_prep.manifest import format_summary
    from data_prep.release import prepare_manifests

    locales = parse_locales(args.locales)
    units_for = dict(args.units_for)
    for locale in locales:  # a misspelt unit kind fails before the corpus is read
        resolve_units(locale, args.units, units_for)
    if args.no_features and release_archives(args.cv_root, locales) is not None:
        raise ValueError("--no-features applies to release folders only: archives are read once, "
                         "and their features are computed in that pass")
    # one `asr prepare` writes a data folder at a time (a second waits, then finds it done)
    with FolderLock(args.out, "data folder").acquire(wait=True):
        manifest_summary = prepare_manifests(
            args.cv_root,
            locales=locales,
            out_dir=args.out,
            hours=parse_hours(args.hours),
            seed=args.seed,
            train_source=args.train_source,
            workers=args.workers,
        )
        print(format_summary(manifest_summary))
        report = prepare_data(
            args.out,
            locales=locales,
            vocab_size=args.vocab_size,
            units=args.units,
            units_for=units_for,
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
    p.add_argument("--strategy", choices=("joint", "progressive"), default="joint",
                   help="joint: train one model on --locales (or fine-tune it with --init); "
                   "progressive: add a new encoder column for --locales to the model in --base, "
                   "every earlier column frozen")
    p.add_argument("--base", type=Path, default=None,
                   help="with --strategy progressive: the trained model (run dir or model file, "
                   "joint or progressive) that gets the new column")
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
    from asr.device import resolve_device
    from asr.train import Trainer, TrainingError

    if args.threads:
        torch.set_num_threads(args.threads)
    if (args.strategy == "progressive") != (args.base is not None):
        raise ValueError("--strategy progressive and --base go together: pass both or neither")
    cfg = load_run_config(args.config, args.overrides)
    resolve_device(args.device)  # an unavailable device is named now, before any data is read
    try:
        trainer = Trainer.from_data(cfg, args.data, parse_locales(args.locales), args.out,
                                    init=args.init, base=args.base,
                                    freeze=parse_locales(args.freeze), resume=args.resume,
                                    device=args.device)
        summary = trainer.fit()
    except TrainingError as e:
        print(f"asr train: error: {e}", file=sys.stderr)
        return 2
    if trainer.dist.main:
        print("\n".join(f"{k:>28}: {v}" for k, v in summary.items()))
    return 0


def add_decoding_flags(p) -> None:
    """Flags shared by transcribe and evaluate: the search and the LM."""
    p.add_argument("--beam", type=int, default=None,
                   help="beam size of the CTC prefix beam search (default: 1 = greedy, "
                   "or 16 with --lm)")
    p.add_argument("--lm", default=None, metavar="LM|LOCALE=LM,...",
                   help="n-gram LM (ARPA or KenLM binary, see `asr lm`) for shallow fusion; "
                   "one file when one language is decoded, else de=lm/de.arpa,zh-CN=lm/zh.arpa")
    p.add_argument("--lm-weight", type=float, default=1.0,
                   help="weight of the LM's log10 probability in the beam score")
    p.add_argument("--word-score", type=float, default=0.0,
                   help="score added per word (word LM) or per emitting frame (token LM)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")


def parse_lm_spec(spec: str | None, locales: list[str]) -> dict[str, str]:
    """'lm.arpa' (one language) or 'de=a.arpa,zh-CN=b.arpa' -> {locale: path}."""
    if not spec:
        return {}
    if "=" not in spec:
        if len(locales) != 1:
            raise ValueError(f"--lm {spec}: several languages may be decoded "
                             f"({', '.join(locales) or 'all the model has'}); "
                             "name each LM's language, e.g. --lm de=lm/de.arpa,zh-CN=lm/zh.arpa")
        return {locales[0]: spec}
    out = {}
    for item in spec.split(","):
        locale, _, path = item.partition("=")
        if not path:
            raise ValueError(f"bad --lm item {item!r}: expected LOCALE=PATH")
        out[locale.strip()] = path.strip()
    return out


def _decode_config(args):
    import torch

    from asr.decode import DecodeConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    beam = args.beam if args.beam is not None else (16 if args.lm else 1)
    return DecodeConfig(beam_size=beam, lm_weight=args.lm_weight, word_score=args.word_score)


def add_transcribe(sub) -> None:
    p = sub.add_parser(
        "transcribe", formatter_class=_formatter,
        help="transcribe audio files or folders (txt, json, srt, vtt)",
        description="Transcribe audio files (any container, rate and channel count: wav, flac, "
        "mp3, ogg/opus, m4a/aac, mp4/mov, webm, wma, aiff and whatever else FFmpeg reads; "
        "folders are walked). Long recordings are streamed and cut at pauses. Unreadable files "
        "are reported and skipped; the exit status is 1 if any failed.")
    p.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio files and folders")
    p.add_argument("--model", required=True, type=Path, help="run directory or model.safetensors")
    p.add_argument("--lang", default="auto",
                   help="locale to decode as (e.g. de, zh-CN), or auto for the language-ID head")
    p.add_argument("--format", choices=("txt", "json", "srt", "vtt"), default="txt",
                   help="output format; json has segments with times, language and probability")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for one output file per input; unset: stdout. It mirrors the "
                   "input: DIR/<path relative to the input>.FORMAT, under DIR/<folder name>/ when "
                   "several inputs are given; files sharing a name keep their extension "
                   "(clip.mp3.txt, clip.wav.txt). Every name is planned first: a clash, an "
                   "output that is an input, or an existing file is refused before decoding")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing transcripts in --out (inputs are never replaced)")
    p.add_argument("--batch-seconds", type=float, default=120.0,
                   help="audio per model batch, padding included (memory grows with it)")
    p.add_argument("--max-segment-seconds", type=float, default=20.0,
                   help="longest stretch decoded at once; longer audio is cut at pauses")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_decoding_flags(p)
    p.set_defaults(func=run_transcribe)


def run_transcribe(args) -> int:
    from asr.output_names import plan_outputs
    from asr.run_lock import FolderLock
    from asr.transcribe import collect_audio_files

    if args.out is None:  # a folder without audio is reported as a failure
        return _transcribe(args, collect_audio_files(args.inputs))
    # one transcribe per --out at a time; every output name decided before any decoding
    with FolderLock(args.out, "transcript folder"):
        return _transcribe(args, plan_outputs(args.inputs, args.out, args.format,
                                              overwrite=args.overwrite))


def _transcribe(args, files: list) -> int:
    """Transcribe [(audio file, output file or anything when printing)] as `args` say."""
    import time

    from tqdm import tqdm

    from asr.audio import AudioError, audio_info
    from asr.device import resolve_device
    from asr.fileio import to_json_line, write_text
    from asr.lid import UNCERTAIN
    from asr.package import load_package_model
    from asr.transcribe import Failure, Transcriber, format_transcript

    if args.out is None and len(files) > 1 and args.format in ("srt", "vtt"):
        raise ValueError(f"--format {args.format} for {len(files)} files needs --out DIR")
    cfg = _decode_config(args)
    device = resolve_device(args.device)
    model, package = load_package_model(args.model, device=device)
    locales = model.languages if args.lang == "auto" else [args.lang]
    try:
        tr = Transcriber(model, package, cfg, parse_lm_spec(args.lm, locales),
                         device=device, batch_seconds=args.batch_seconds,
                         max_segment_seconds=args.max_segment_seconds)
        tr.check_language(args.lang)
    except RuntimeError as e:  # no beam-search library on this Python
        print(f"asr transcribe: error: {e}", file=sys.stderr)
        return 2
    total = 0.0
    for f, _ in files:
        try:
            total += audio_info(f)[0]
        except AudioError:
            pass  # reported with its reason when its turn comes
    bar = tqdm(total=round(total, 1), unit="s", desc="transcribe", dynamic_ncols=True,
               disable=args.no_progress, file=sys.stderr)
    t0, failed, done, seconds, uncertain = time.perf_counter(), [], 0, 0.0, 0
    for (path, target), result in zip(files, tr.run([str(f) for f, _ in files], lang=args.lang,
                                                 progress=lambda s: bar.update(round(s, 1))),
                                   strict=True):
        if isinstance(result, Failure):
            failed.append(result)
            tqdm.write(f"skipped {result.source}: {result.reason}", file=sys.stderr)
            continue
        done, seconds = done + 1, seconds + result.duration_seconds
        if result.language_probability is not None and result.language_probability < UNCERTAIN:
            uncertain += 1
            tqdm.write(f"{result.source}: language uncertain ({result.language} at "
                       f"{result.language_probability:.2f}); pass --lang if you know it",
                       file=sys.stderr)
        text = format_transcript(result, args.format)
        if args.out is not None:
            write_text(target, text)
        elif len(files) == 1:
            sys.stdout.write(text)
        elif args.format == "json":
            print(to_json_line(result.to_dict()), end="")
        else:
            print(f"{path}\t{result.text}")
        sys.stdout.flush()
    bar.close()
    elapsed = time.perf_counter() - t0
    print(f"transcribed {done} of {len(files)} files, {seconds:.1f} s of audio in {elapsed:.1f} s "
          f"(real-time factor {elapsed / max(seconds, 1e-9):.3f})"
          + (f"; {uncertain} with an uncertain language" if uncertain else "")
          + (f"; {len(failed)} failed:" if failed else ""), file=sys.stderr)
    for f in failed:
        print(f"  {f.source}: {f.reason}", file=sys.stderr)
    return 1 if failed else 0


def add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate", formatter_class=_formatter,
        help="score a model on a prepared split: WER/CER with 95%% intervals per language",
        description="Decode data/<locale>/<split>.jsonl (features from the cache when present) "
        "and report per language WER and CER (jiwer, normalised text) with bootstrap 95% "
        "intervals, S/D/I counts, hours, language-ID accuracy (multilingual models) and the "
        "worst utterances, as Markdown and JSON.")
    p.add_argument("--model", required=True, type=Path, help="run directory or model.safetensors")
    p.add_argument("--data", default=Path("data"), type=Path, help="prepared data directory")
    p.add_argument("--split", default="test", help="split to score: train, dev or test")
    p.add_argument("--locales", default="", help="comma-separated locales (default: all the model has)")
    p.add_argument("--out", type=Path, default=None,
                   help="folder for eval_<split>*.md/.json (default: the model's run directory)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_decoding_flags(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    from asr.device import resolve_device
    from asr.evaluate import evaluate_model, format_report, plot_lid_confusion, report_name
    from asr.fileio import write_json, write_text
    from asr.package import resolve_model_path

    cfg = _decode_config(args)
    locales = parse_locales(args.locales) or None
    lm_paths = parse_lm_spec(args.lm, locales or [])
    try:
        report = evaluate_model(args.model, args.data, split=args.split, locales=locales,
                                decode=cfg, lm_paths=lm_paths, device=resolve_device(args.device),
                                seed=args.seed, progress=not args.no_progress)
    except RuntimeError as e:
        print(f"asr evaluate: error: {e}", file=sys.stderr)
        return 2
    out = args.out or resolve_model_path(args.model).parent
    stem = report_name(args.split, cfg, lm_paths)
    text = format_report(report)
    write_json(out / f"{stem}.json", report)
    write_text(out / f"{stem}.md", text)
    png = plot_lid_confusion(report, out / f"{stem}_lid.png")
    print(text + f"\nwritten: {out / stem}.md and .json" + (f", {out / stem}_lid.png" if png else ""))
    return 0


def add_lid_fit(sub) -> None:
    p = sub.add_parser(
        "lid-fit", formatter_class=_formatter,
        help="fit a model's language identification on data of all its languages",
        description="Fit the language-ID head of a model file on its frozen encoder: pooled "
        "statistics of up to 1000 training utterances per language plus held-out speakers "
        "(the dev split, or a share of train's speakers) of every language the model holds, a "
        "logistic regression with languages weighted equally; its accuracy on the held-out "
        "speakers, cross-validated over speaker groups, is recorded in the file, and "
        "transcribe --lang auto needs it to be at least 95% in "
        "every language. Training does this itself when its data covers every language; use "
        "this after fine-tuning on data of one language.")
    p.add_argument("--model", required=True, type=Path, help="run directory or model.safetensors")
    p.add_argument("--data", required=True, type=Path,
                   help="prepared data directory holding <locale>/train.jsonl for every language")
    p.add_argument("--out", type=Path, default=None, help="model file to write; None: replace --model's")
    p.add_argument("--reference", type=Path, default=None, metavar="START",
                   help="the model --model was fine-tuned from: keep its front end and shared "
                   "blocks, frozen, for language ID (fine-tuning moves the model's own away from "
                   "its other languages). Fine-tuning runs keep one themselves; this is for "
                   "models fine-tuned before they did")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.set_defaults(func=run_lid_fit)


def run_lid_fit(args) -> int:
    from asr.device import resolve_device
    from asr.lid import format_record, refit

    out, record = refit(args.model, args.data, args.out, device=resolve_device(args.device),
                        progress=lambda m: print(m, file=sys.stderr), reference=args.reference)
    print(f"language ID on held-out speakers:\n{format_record(record)}\nwritten: {out}")
    return 0


def add_lm(sub) -> None:
    p = sub.add_parser(
        "lm", formatter_class=_formatter,
        help="build an n-gram LM (ARPA, Kneser-Ney) from a language's training text",
        description="Count n-grams in data/<locale>/<split>.jsonl transcripts and write an ARPA "
        "file with interpolated Kneser-Ney smoothing: words for languages written with spaces, the "
        "tokenizer's units (characters, or romanised units such as pinyin) for the others.")
    p.add_argument("--data", default=Path("data"), type=Path, help="prepared data directory")
    p.add_argument("--locale", required=True, help="locale whose text to model, e.g. de or zh-CN")
    p.add_argument("--order", type=int, default=3, help="n-gram order")
    p.add_argument("--unit", choices=("auto", "word", "token"), default="auto",
                   help="LM symbols: words, or the tokenizer's units (open vocabulary); auto = "
                   "words for spaced languages, the tokenizer's units for unspaced ones (asr/languages.py)")
    p.add_argument("--split", default="train", help="manifest whose norm_text is the training text")
    p.add_argument("--text", type=Path, action="append", default=[],
                   help="extra raw text file, one sentence a line (normalised here; repeatable)")
    p.add_argument("--out", required=True, type=Path, help="ARPA file to write")
    p.set_defaults(func=run_lm)


def run_lm(args) -> int:
    from asr.fileio import read_jsonl, refuse_special
    from asr.lm import ArpaModel, build_lm, lm_units
    from asr.prepare import tokenizer_path
    from asr.text import check_locale, normalize_text
    from asr.tokenizer import Tokenizer

    tok = Tokenizer.load(tokenizer_path(args.data, check_locale(args.locale)))
    texts = [r["norm_text"] for r in read_jsonl(args.data / args.locale / f"{args.split}.jsonl")]
    for path in args.text:
        undecodable = 0
        refuse_special(path)
        with open(path, "rb") as f:
            for raw in f:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    undecodable += 1
                    continue
                if line.strip():
                    texts.append(normalize_text(line, args.locale))
        if undecodable:
            print(f"{path}: skipped {undecodable} line(s) that are not UTF-8", file=sys.stderr)
    summary = build_lm(texts, tok, args.out, order=args.order, unit=args.unit)
    print(f"{args.out}: {summary['order']}-gram {summary['unit']} LM from {summary['sentences']} "
          f"sentences, {summary['vocab']} symbols, n-grams per order {summary['ngrams']}")
    dev = args.data / args.locale / "dev.jsonl"
    if dev.exists():
        ppl = ArpaModel(args.out).perplexity(lm_units(r["norm_text"], tok, summary["unit"])
                                             for r in read_jsonl(dev))
        print(f"dev perplexity: {ppl:.1f} per {summary['unit']}")
    return 0


def add_experiment(sub) -> None:
    from asr.experiment.config import shipped_experiments
    from asr.experiment.strategies import NAMES as STRATEGY_NAMES

    shipped = ", ".join(shipped_experiments())
    p = sub.add_parser(
        "experiment", formatter_class=_formatter,
        help="the transfer experiment: target CER against hours, with and without helper languages",
        description="Run a grid of trainings from one experiment YAML (a path, or the name of a "
        f"shipped one in asr/configs/experiments: {shipped}): prepare the data, train every "
        "strategy x target hours x seed (x layout) under one budget rule, score the test sets "
        "and write results.md, results.csv and the plots. Finished runs are skipped and interrupted ones resumed; a changed "
        f"config gets new runs. Strategies (grid.strategies): {', '.join(STRATEGY_NAMES)}; what "
        "each means is its record in asr/experiment/strategies.py.")
    p.add_argument("--config", required=True, help="experiment YAML: a path or a shipped name")
    p.add_argument("--out", type=Path, default=None, help="experiment directory (default: exp/<name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an experiment value, e.g. --set budget.max_steps=200 (repeatable)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the report from the runs finished so far (and "
                        "save the plan beside the ledger; without the prepared data, report "
                        "from that saved plan when config and code match)")
    p.add_argument("--dry-run", action="store_true",
                   help="train nothing, write no report: list every planned run and where it "
                        "stands (in the ledger, finished here, unfinished at update N here or in "
                        "the carried state, to train); safe beside a sweep training in the folder. "
                        "The run keys hash the prepared data, so missing data is prepared first")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at once, each in its own process with its output in "
                   "<run>/train.log (on a CPU machine: the number of cores)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch per run (0: with --jobs > 1, the cores shared "
                   "among the runs training at that moment, re-balanced as runs finish, "
                   "which can change results in the last bits from one rerun to the next; "
                   "with --jobs 1, torch's default). A fixed N reruns bit-identically")
    p.add_argument("--no-progress", action="store_true", help="no per-step progress bars")
    p.set_defaults(func=run_experiment)


def run_experiment(args) -> int:
    import torch

    from asr.experiment.study import load_experiment_config, plan_status
    from asr.experiment.study import run_experiment as run
    from asr.train import TrainingError

    if args.threads:
        torch.set_num_threads(args.threads)
    exp = load_experiment_config(args.config, args.overrides)
    if args.dry_run:
        plan_status(exp, out_dir=args.out)
        return 0
    try:
        report = run(exp, out_dir=args.out, device=args.device, progress=not args.no_progress,
                     report_only=args.report_only, workers=args.jobs, threads=args.threads)
    except TrainingError as e:
        print(f"asr experiment: error: {e}", file=sys.stderr)
        return 2
    print("\n" + report["headline"])
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
    add_transcribe(sub)
    add_evaluate(sub)
    add_lid_fit(sub)
    add_lm(sub)
    add_experiment(sub)
    return parser


def _version() -> str:
    from asr import __version__

    return f"polyglot-asr {__version__}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from asr.audio import AudioError
    from asr.checkpoint import CheckpointError
    from asr.config import ConfigError
    from asr.run_lock import FolderBusyError

    try:
        return args.func(args)
    # OSError: a missing or unreadable input, a full disk; ValueError: bad data or arguments
    except (ConfigError, CheckpointError, AudioError, FolderBusyError, OSError, ValueError) as e:
        if os.environ.get("ASR_DEBUG"):
            raise
        print(f"asr {args.command}: error: {e}  (ASR_DEBUG=1 shows a traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
