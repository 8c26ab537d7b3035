"""Benchmarks: speed, memory and utilisation of synthesis, preparation, training and transcription.

Usage:
    python scripts/bench.py [--quick] [--work bench/tmp] [--out bench] [--threads 2]
        [--groups synth,prep,train,transcribe,memory,scaling] [--model exp/run1]
    (or `make bench`; `--quick` is the seconds-long smoke setting the tests run)

Writes bench/results.json (every run of every figure) and bench/results.md (tables, machine
description, targets). The synthetic corpus, prepared data and test files are made under
--work on the first run and reused after.

Figures (each from --repeats runs: median, min-max and relative spread):
  1. synthesis and preparation (MP3 decode + log-mel into the cache): x real time per core;
  2. training audio-seconds per second, fp32 and bf16, of the default config; counted FLOPs
     per audio second; utilisation = achieved FLOP/s / a matmul peak measured in this run in
     the same dtype and thread count;
  3. data-pipeline efficiency: real loader steps / the same batches replayed from memory;
  4. transcription real-time factor (MP3 decode and features included), greedy, beam and
     beam + LM, for a batch of short files and one long file; files per second;
  5. peak resident memory (os.wait4 of a child process) of training and of transcribing the
     long file;
  6. scaling: training seconds per epoch against hours, transcription seconds against file
     length, with the fitted log-log exponent.
Ratios (bf16/fp32, efficiency, utilisation) come from measurements taken alternately in one
process, so they hold on a machine shared with other jobs; absolute figures do not.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from benchlib import (
    Timer,
    child_peak_rss,
    count_flops,
    fit_exponent,
    fmt,
    machine_description,
    matmul_peak,
    summarize,
    vm_hwm_bytes,
)

from asr.audio import load_audio
from asr.config import load_run_config
from asr.device import DTYPES, choose_precision, resolve_device
from asr.fileio import read_jsonl, write_json, write_jsonl
from asr.model.multilingual import count_parameters
from asr.prepare import feature_dir, tokenizer_path
from asr.start import build_run
from asr.train import Trainer

GROUPS = ("synth", "prep", "train", "transcribe", "memory", "scaling")
LOCALES = ("de", "zh-CN")
LONG_RATE = 48000  # Hz: long test files are 48 kHz MP3s, as Common Voice clips are
GB = 2**30


@dataclasses.dataclass(frozen=True)
class Settings:
    """Sizes of one benchmark run."""

    configs: tuple  # run configs trained and timed (the last one also in scaling and memory)
    corpus_hours: dict  # train hours synthesised per locale
    eval_hours: float  # dev and test hours per locale
    vocab_size: int
    synth_hours: float  # audio synthesised per repeat of figure 1
    prep_hours: float  # audio prepared per repeat of figure 1
    steps: int  # timed training updates per measurement
    warmup: int  # untimed updates first
    repeats: int
    flop_steps: int  # updates whose FLOPs are counted
    matmul_n: int
    scaling_hours: tuple
    short_files: int
    lengths_seconds: tuple  # transcription scaling; the last is the long file
    beam: int
    memory_repeats: int


FULL = Settings(configs=("small", "default"), corpus_hours={"de": 1.0, "zh-CN": 0.2}, eval_hours=0.03,
                vocab_size=256, synth_hours=0.03, prep_hours=0.1, steps=5, warmup=2, repeats=3,
                flop_steps=3, matmul_n=2048, scaling_hours=(0.1, 0.2, 0.5, 1.0), short_files=40,
                lengths_seconds=(75, 150, 300, 600, 1200), beam=16, memory_repeats=2)
QUICK = Settings(configs=("tiny",), corpus_hours={"de": 0.02, "zh-CN": 0.008}, eval_hours=0.004,
                 vocab_size=48, synth_hours=0.004, prep_hours=0.005, steps=2, warmup=1,
                 repeats=2, flop_steps=1, matmul_n=256, scaling_hours=(0.005, 0.01, 0.02),
                 short_files=4, lengths_seconds=(8, 16, 32), beam=4, memory_repeats=1)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of seconds")
    p.add_argument("--work", default="bench/tmp", help="corpus, data and scratch files")
    p.add_argument("--out", default=None,
                   help="where results.json and results.md go (default: bench, or "
                        "bench/tmp/quick with --quick)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for training and transcription; 1 measures per core "
                        "and stays sane beside other jobs (OpenMP threads that lose their core "
                        "stall each other: 20x slower measured with 2 threads on 2 busy cores)")
    p.add_argument("--groups", default=",".join(GROUPS), help="figure groups to run")
    p.add_argument("--model", default=None,
                   help="model timed in transcription (default: the benchmark's own, saved "
                        "after its training steps; beam timings depend on how trained it is)")
    p.add_argument("--repeats", type=int, default=None, help="override the runs per figure")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # memory probes
    p.add_argument("--arg", action="append", default=[], help=argparse.SUPPRESS)
    return p.parse_args(argv)


class Bench:
    """One benchmark run: settings, paths, and the figures gathered so far."""

    def __init__(self, args: argparse.Namespace):
        self.s = QUICK if args.quick else FULL
        if args.repeats:
            self.s = dataclasses.replace(self.s, repeats=args.repeats)
        self.quick = args.quick
        self.work = Path(args.work)
        self.threads = args.threads
        self.devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        self.model_path = Path(args.model) if args.model else None
        self.corpus = self.work / ("corpus-quick" if args.quick else "corpus")
        self.data = self.work / ("data-quick" if args.quick else "data")
        self.results: dict = {"settings": dataclasses.asdict(self.s) | {"quick": args.quick}}

    # ---- set-up -------------------------------------------------------------------------
    def prepare(self) -> None:
        """The synthetic corpus and its prepared data (reused when already there)."""
        from asr.prepare import prepare_data
        from data_prep.release import prepare_manifests
        from data_prep.synth import synthesize_corpus

        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tiny corpora clamp tokenizer vocabularies
            synthesize_corpus(self.corpus, list(LOCALES), self.s.corpus_hours,
                              eval_hours=self.s.eval_hours, workers=os.cpu_count() or 1,
                              progress=False)
            prepare_manifests(self.corpus, list(LOCALES), self.data, progress=False)
            prepare_data(self.data, list(LOCALES), vocab_size=self.s.vocab_size,
                         workers=os.cpu_count() or 1, progress=False)
        self.results["setup_seconds"] = time.perf_counter() - t0

    def trainer(self, out: Path, config: str, precision: str = "auto", data: Path | None = None,
                locales=LOCALES, device: str = "cpu") -> Trainer:
        cfg = load_run_config(config, [f"train.precision={precision}", "train.max_steps=1000000"])
        return bench_trainer(cfg, data or self.data, list(locales), out, device=device)

    # ---- 1. synthesis and preparation ---------------------------------------------------
    def synth(self) -> None:
        from data_prep.synth import synthesize_corpus

        speeds = []
        for r in range(self.s.repeats):
            out = self.work / "synth-speed"
            shutil.rmtree(out, ignore_errors=True)
            half = self.s.synth_hours / 2
            summary = synthesize_corpus(out, list(LOCALES), {loc: half for loc in LOCALES},
                                        seed=1000 + r, eval_hours=0.0, workers=1, progress=False)
            speeds.append(summary["x_real_time"])
            shutil.rmtree(out, ignore_errors=True)
        self.results["synthesis_x_real_time_per_core"] = summarize(speeds)

    def prep(self) -> None:
        from asr.feature_cache import build_cache
        from data_prep.subset import select_hours

        records = select_hours(read_jsonl(self.data / "de" / "train.jsonl"), self.s.prep_hours, 0)
        manifest = self.work / "prep-speed" / "train.jsonl"
        write_jsonl(manifest, records)
        speeds, threads = [], torch.get_num_threads()
        torch.set_num_threads(1)  # one core: build_cache runs in this process with workers=1
        try:
            for _ in range(self.s.repeats):
                cache = self.work / "prep-speed" / "cache"
                shutil.rmtree(cache, ignore_errors=True)
                speeds.append(build_cache(manifest, cache, workers=1, progress=False)
                              .summary["x_real_time"])
        finally:
            torch.set_num_threads(threads)
        shutil.rmtree(self.work / "prep-speed", ignore_errors=True)
        self.results["preparation_x_real_time_per_core"] = summarize(speeds) | {
            "audio_seconds": sum(r["duration"] for r in records)}

    # ---- 2 and 3. training throughput, FLOPs, utilisation, pipeline efficiency ----------
    def train(self) -> None:
        for device in self.devices:
            for config in self.s.configs:
                with tempfile.TemporaryDirectory(dir=self.work) as tmp:
                    figures = self._train_on(device, config, Path(tmp))
                self.results.setdefault("training", {}).setdefault(device, {})[config] = figures

    def _train_on(self, device: str, config: str, tmp: Path) -> dict:
        """Trainers of the same seed in fp32 and, where the hardware has it natively, in bf16
        (what `precision: auto` picks) draw the same batches; each timed step runs one batch
        in fp32, then in the native precision from the loader, then again from memory, so all
        are compared on identical shapes moments apart."""
        s = self.s
        auto = choose_precision("auto", resolve_device(device))
        precisions = ["fp32"] + ([auto.name] if auto.name != "fp32" else [])
        native = precisions[-1]  # auto's choice: the loader-against-memory figure runs in it
        trainers = {p: self.trainer(tmp / p, config, p, device=device) for p in precisions}
        for t in trainers.values():
            run_steps(t, s.warmup)
        flops, audio = count_flops(lambda: run_steps(trainers["fp32"], s.flop_steps)[0])
        for p in precisions[1:]:  # keep the samplers in step
            for _ in range(s.flop_steps):
                trainers[p].batches.inner.sampler.next_batch()
        flops_per_audio_second = flops / audio
        peaks = {p: [] for p in precisions}
        cpu_peaks = {p: [] for p in precisions}  # FLOPs per CPU second: what one whole core gives
        keys = [*precisions, f"{native}_in_memory"]
        aps = {k: [] for k in keys}
        cpu_aps = {k: [] for k in keys}
        cpu_share = []
        for _ in range(s.repeats):
            for p in precisions:
                peak = matmul_peak(DTYPES[p], device, s.matmul_n, repeats=1)
                peaks[p].append(peak["median"])
                cpu_peaks[p].append(peak["per_cpu_second"]["median"])
            audio, wall, cpu = dict.fromkeys(aps, 0.0), dict.fromkeys(aps, 0.0), dict.fromkeys(aps, 0.0)
            for _ in range(s.steps):
                recorded = []
                plan = [(p, trainers[p], {"record": recorded} if p == native else {})
                        for p in precisions] + [(f"{native}_in_memory", trainers[native],
                                                 {"replay": recorded})]
                for key, trainer, kw in plan:
                    a, timer = run_steps(trainer, 1, threads=self.threads, **kw)
                    audio[key] += a
                    wall[key] += timer.wall
                    cpu[key] += timer.cpu
            for key in aps:
                aps[key].append(audio[key] / wall[key])
                cpu_aps[key].append(audio[key] / cpu[key])
            cpu_share.append(sum(cpu.values()) / (sum(wall.values()) * self.threads))
        out = {"config": config, "threads": self.threads,
               "parameters": count_parameters(trainers["fp32"].model),
               "precision_auto": auto.to_dict(),
               "flops_per_audio_second": flops_per_audio_second,
               "audio_seconds_per_second": {k: summarize(v) for k, v in aps.items()},
               "audio_seconds_per_cpu_second": {k: summarize(v) for k, v in cpu_aps.items()},
               "matmul_peak_flops": {k: summarize(v) for k, v in peaks.items()},
               "matmul_peak_flops_per_cpu_second": {k: summarize(v) for k, v in cpu_peaks.items()},
               "cpu_share": summarize(cpu_share)}
        util = {}
        for p in precisions:
            util[p] = summarize([a * flops_per_audio_second / pk
                                 for a, pk in zip(aps[p], peaks[p], strict=True)])
            # the same on CPU time: free of other jobs' share of the core
            util[f"{p}_cpu_time"] = summarize([a * flops_per_audio_second / pk for a, pk in
                                               zip(cpu_aps[p], cpu_peaks[p], strict=True)])
        if native != "fp32":
            util[f"{native}_vs_fp32_peak"] = summarize([a * flops_per_audio_second / pk for a, pk in
                                                        zip(aps[native], peaks["fp32"], strict=True)])
            out[f"{native}_speedup"] = summarize([b / f for b, f in zip(aps[native], aps["fp32"],
                                                                         strict=True)])
        out["utilisation"] = util
        out["pipeline_efficiency"] = summarize([r / m for r, m in zip(
            aps[native], aps[f"{native}_in_memory"], strict=True)])
        if device == "cpu" and config == self.s.configs[-1] and self.model_path is None:
            from asr.package import save_model  # the model transcription times

            t = trainers[native]
            self.model_path = self.work / ("model-quick" if self.quick else "model") / "model.safetensors"
            save_model(self.model_path, t.model, t.cfg, t.tokenizers, t.stats,
                       extra={"step": t.step})
        return out

    # ---- 4. transcription ---------------------------------------------------------------
    def ensure_model(self) -> Path:
        if self.model_path is None or not self.model_path.exists():
            existing = self.work / ("model-quick" if self.quick else "model") / "model.safetensors"
            if existing.exists():
                self.model_path = existing
            else:
                with tempfile.TemporaryDirectory(dir=self.work) as tmp:
                    self._train_on("cpu", self.s.configs[-1], Path(tmp))
        return self.model_path

    def test_files(self) -> tuple[list[str], float, list[tuple[Path, float]]]:
        """Short de test clips, their total seconds, and long files of each test length."""
        rows = read_jsonl(self.data / "de" / "test.jsonl") + read_jsonl(self.data / "de" / "dev.jsonl")
        short = rows[: self.s.short_files]
        longs = []
        for seconds in self.s.lengths_seconds:
            path = self.work / f"long-{seconds}s.mp3"
            if not path.exists():
                write_long_file(path, seconds, read_jsonl(self.data / "de" / "train.jsonl"))
            longs.append((path, float(seconds)))
        return [r["audio"] for r in short], sum(r["duration"] for r in short), longs

    def transcribe(self) -> None:
        from asr import load_model
        from asr.lm import build_lm

        model = load_model(self.ensure_model())
        lm = self.work / "lm-de.arpa"
        build_lm([r["norm_text"] for r in read_jsonl(self.data / "de" / "train.jsonl")],
                 model._package.tokenizers["de"], lm, order=3)
        files, short_seconds, longs = self.test_files()
        long_file, long_seconds = longs[-1]
        modes = {"greedy": {}, "beam": {"beam": self.s.beam},
                 "beam_lm": {"beam": self.s.beam, "lm": str(lm)}}
        short = {m: [] for m in modes}
        long = {m: [] for m in modes}
        cpu = {"short": [], "long": []}  # greedy CPU seconds
        lengths = {sec: [] for _, sec in longs}
        for kw in modes.values():  # build decoders (and load the LM) before timing
            model.transcribe_batch(files[:1], lang="de", **kw)
        for _ in range(self.s.repeats):
            for m, kw in modes.items():
                with Timer() as t:
                    model.transcribe_batch(files, lang="de", **kw)
                short[m].append(t.wall)
                if m == "greedy":
                    cpu["short"].append(t.cpu / short_seconds)
                with Timer() as t:
                    model.transcribe(str(long_file), lang="de", **kw)
                long[m].append(t.wall)
                if m == "greedy":
                    cpu["long"].append(t.cpu / long_seconds)
            for path, sec in longs[:-1]:
                with Timer() as t:
                    model.transcribe(str(path), lang="de")
                lengths[sec].append(t.wall)
            lengths[long_seconds].append(long["greedy"][-1])
        self.results["transcription"] = {
            "threads": self.threads, "model": str(self.model_path),
            "short_files": len(files), "short_audio_seconds": short_seconds,
            "long_file_seconds": long_seconds,
            "rtf_short": {m: summarize([w / short_seconds for w in v]) for m, v in short.items()},
            "rtf_long": {m: summarize([w / long_seconds for w in v]) for m, v in long.items()},
            "files_per_second": {m: summarize([len(files) / w for w in v]) for m, v in short.items()},
            "greedy_cpu_seconds_per_audio_second": {k: summarize(v) for k, v in cpu.items()},
        }
        self.results.setdefault("scaling", {})["transcription"] = scaling_figure(
            {sec: v for sec, v in lengths.items()}, "file_seconds")

    # ---- 5. peak memory -----------------------------------------------------------------
    def memory(self) -> None:
        model = self.ensure_model()
        _, _, longs = self.test_files()
        long_file = longs[-1][0]
        common = ["--threads", str(self.threads)] + (["--quick"] if self.quick else [])
        probes = {
            "idle": ["--arg", str(model)],  # interpreter, torch and a loaded model
            "train": ["--arg", str(self.data)],
            "train_worst_case": ["--arg", str(self.data)],
            "transcribe_long": ["--arg", str(model), "--arg", str(long_file)],
        }
        out = {}
        for name, extra in probes.items():
            peaks, detail = [], {}
            for _ in range(self.s.memory_repeats):
                _, detail = child_peak_rss([__file__, "--child", name, *common, *extra])
                peaks.append(detail.pop("vm_hwm_bytes") / GB)
            out[name] = summarize(peaks) | {"unit": "GB", "detail": detail}
        out["transcribe_long"]["file_seconds"] = longs[-1][1]
        self.results["peak_memory"] = out

    # ---- 6. scaling ---------------------------------------------------------------------
    def scaling(self) -> None:
        from data_prep.subset import select_hours

        pool = read_jsonl(self.data / "de" / "train.jsonl")
        times: dict[float, list[float]] = {}
        for hours in self.s.scaling_hours:
            root = self.work / "scaling" / f"h{hours:g}"
            loc = root / "de"
            loc.mkdir(parents=True, exist_ok=True)
            records = select_hours(pool, hours, seed=0)
            write_jsonl(loc / "train.jsonl", records)
            for link, target in ((tokenizer_path(root, "de"), tokenizer_path(self.data, "de")),
                                 (feature_dir(root, "de", "train"),
                                  feature_dir(self.data, "de", "train"))):
                link.parent.mkdir(parents=True, exist_ok=True)
                if not link.exists():
                    link.symlink_to(target.resolve())
            actual = sum(r["duration"] for r in records) / 3600
            with tempfile.TemporaryDirectory(dir=self.work) as tmp:
                t = self.trainer(Path(tmp) / "run", self.s.configs[-1], data=root, locales=["de"])
                batches = len(t.batches.inner.sampler.buckets["de"])
                run_steps(t, 1)  # warm-up
                times[actual] = [run_steps(t, batches, threads=self.threads)[1].wall
                                 for _ in range(self.s.repeats)]
        self.results.setdefault("scaling", {})["training"] = scaling_figure(times, "hours")


class BenchBatches:
    """The run's batch source (asr.data.TrainingBatches) with two switches: `record` collects
    the batches the loader makes, `replay` serves batches from memory instead of the loader.
    The Trainer receives it like any batch source."""

    def __init__(self, inner):
        self.inner, self.record, self.replay = inner, None, None

    def next_batch(self):
        if self.replay is not None:
            return next(self.replay)
        batch = self.inner.next_batch()
        if self.record is not None:
            self.record.append(batch)
        return batch

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)

    def describe(self) -> dict:
        return self.inner.describe()


def bench_trainer(cfg, data: Path, locales: list[str], out: Path, device: str = "cpu") -> Trainer:
    """A Trainer on the run's own parts (asr.start.build_run) with a BenchBatches source."""
    parts = build_run(cfg, data, locales)
    return Trainer(parts.cfg, parts.model, parts.tokenizers, parts.stats,
                   BenchBatches(parts.batches), parts.dev, out, device=device, progress=False)


def run_steps(trainer: Trainer, steps: int, record: list | None = None, replay: list | None = None,
              threads: int = 1) -> tuple[float, Timer]:
    """Run `steps` updates; returns (audio seconds, timer). `record` collects the batches the
    loader made; `replay` serves those batches from memory instead of the loader."""
    source = trainer.batches
    source.record, source.replay = record, None if replay is None else iter(replay)
    audio = 0.0
    try:
        with Timer(trainer.device, threads) as timer:
            for _ in range(steps):
                audio += trainer.update()["audio_seconds"]
    finally:
        source.record = source.replay = None
    return audio, timer


def scaling_figure(times: dict[float, list[float]], x_name: str) -> dict:
    """Seconds per point and the log-log exponent, fitted per repeat and on the medians."""
    xs = sorted(times)
    repeats = min(len(times[x]) for x in xs)
    per_repeat = [fit_exponent(xs, [times[x][r] for x in xs]) for r in range(repeats)]
    return {"points": [{x_name: x, "seconds": summarize(times[x])} for x in xs],
            "exponent": summarize(per_repeat),
            "exponent_of_medians": fit_exponent(xs, [summarize(times[x])["median"] for x in xs])}


def write_long_file(path: Path, seconds: float, records: list[dict]) -> None:
    """A 48 kHz MP3 of `seconds`: training clips back to back (they carry their own pauses)."""
    from data_prep.synth import write_mp3

    need, parts, have = int(seconds * LONG_RATE), [], 0
    for r in records * (1 + int(seconds // max(1.0, sum(x["duration"] for x in records)))):
        if have >= need:
            break
        parts.append(load_audio(r["audio"], sample_rate=LONG_RATE))
        have += len(parts[-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp3(path, np.concatenate(parts)[:need])


# ---- memory probes: run in a child process, measured by the parent with os.wait4 ---------
def child(args: argparse.Namespace) -> None:
    import json

    torch.set_num_threads(args.threads)
    s = QUICK if args.quick else FULL
    detail: dict = {}
    if args.child == "idle":
        from asr import load_model

        load_model(args.arg[0])
    elif args.child == "transcribe_long":
        from asr import load_model

        t = load_model(args.arg[0]).transcribe(args.arg[1], lang="de")
        detail = {"seconds": t.duration_seconds}
    elif args.child in ("train", "train_worst_case"):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_run_config(s.configs[-1], ["train.max_steps=1000000"])
            trainer = bench_trainer(cfg, Path(args.arg[0]), list(LOCALES), Path(tmp))
            batches = (largest_batches(trainer) if args.child == "train"
                       else [worst_case_batch(trainer)] * 2)
            detail = {"batches": [list(b.feats.shape) for b in batches]}
            run_steps(trainer, len(batches), replay=batches)
    print(json.dumps(detail | {"vm_hwm_bytes": vm_hwm_bytes()}))


def largest_batches(trainer: Trainer) -> list:
    """Per language, the batch of the longest utterances and the one with the most frames."""
    from asr.data import collate

    out, source = [], trainer.batches.inner
    for loc, buckets in source.sampler.buckets.items():
        frames = source.datasets[loc].frames
        pick = {max(range(len(buckets)), key=lambda i: frames[buckets[i]].max()),
                max(range(len(buckets)), key=lambda i: len(buckets[i]) * frames[buckets[i]].max())}
        out += [collate(source.datasets[loc], buckets[i], trainer.stats) for i in sorted(pick)]
    return out


def worst_case_batch(trainer: Trainer):
    """The largest batch the config allows: utterances of max_utterance_seconds filling the
    frame budget, random features and targets of a plausible length (one token per 3 outputs)."""
    from asr.data import Batch

    d = trainer.cfg.data
    frames = int(d.max_utterance_seconds * 1000 / trainer.cfg.features.hop_ms)
    b = max(1, min(d.max_batch_utterances, d.batch_frames // frames))
    loc = sorted(trainer.tokenizers)[0]
    vocab = trainer.tokenizers[loc].vocab_size
    g = torch.Generator().manual_seed(0)
    target_len = frames // 12
    return Batch(loc, torch.randn(b, frames, trainer.cfg.model.n_mels, generator=g),
                 torch.full((b,), frames), torch.randint(1, vocab, (b * target_len,), generator=g),
                 torch.full((b,), target_len), [f"worst{i}" for i in range(b)])


# ---- report -------------------------------------------------------------------------------
def targets(r: dict) -> list[dict]:
    """The issue's targets against the measured medians (only those whose figures ran)."""
    rows = []

    def add(name, goal, value, met, text):
        rows.append({"target": name, "goal": goal, "measured": value, "met": bool(met),
                     "text": text})

    for config, train in r.get("training", {}).get("cpu", {}).items():
        e = train["pipeline_efficiency"]["median"]
        add(f"data-pipeline efficiency, {config}", ">= 0.9", e, e >= 0.9, f"{e:.3f}")
        u = train["utilisation"]["fp32"]["median"]
        native = train["precision_auto"]["precision"]
        also = (f"; {native}: {100 * train['utilisation'][native]['median']:.1f}% of the "
                f"{native} peak, {100 * train['utilisation'][native + '_vs_fp32_peak']['median']:.1f}%"
                f" of the fp32 peak" if native != "fp32" else "; no native bf16 on this CPU")
        add(f"training utilisation, fp32 / fp32 matmul peak, {config}", ">= 50%", u, u >= 0.5,
            f"{100 * u:.1f}% ({100 * train['utilisation']['fp32_cpu_time']['median']:.1f}% on "
            f"CPU time{also})")
    tr = r.get("transcription")
    if tr:
        short, long = tr["rtf_short"]["greedy"]["median"], tr["rtf_long"]["greedy"]["median"]
        add("greedy real-time factor (MP3 decode included)", "<= 0.01", max(short, long),
            max(short, long) <= 0.01, f"short files {short:.4f}, "
            f"{tr['long_file_seconds'] / 60:.3g}-min file {long:.4f} (CPU seconds per audio "
            f"second: {tr['greedy_cpu_seconds_per_audio_second']['short']['median']:.4f}, "
            f"{tr['greedy_cpu_seconds_per_audio_second']['long']['median']:.4f})")
    mem = r.get("peak_memory")
    if mem:
        worst = max(mem["train"]["median"], mem["train_worst_case"]["median"])
        add("training peak memory", "<= 4 GB", worst, worst <= 4,
            f"{worst:.2f} GB (corpus's largest batches {mem['train']['median']:.2f} GB, "
            f"config's worst case {mem['train_worst_case']['median']:.2f} GB)")
        t = mem["transcribe_long"]["median"]
        add(f"peak memory transcribing a {mem['transcribe_long']['file_seconds'] / 60:.3g}-min file",
            "<= 1 GB", t, t <= 1, f"{t:.2f} GB")
    for kind in ("training", "transcription"):
        sc = r.get("scaling", {}).get(kind)
        if sc:
            x = sc["exponent"]["median"]
            add(f"scaling exponent, {kind}", "1.0 +/- 0.1", x, abs(x - 1) <= 0.1,
                fmt(sc["exponent"], digits=3))
    return rows


def training_rows(where: str, t: dict) -> list[tuple[str, str]]:
    """Figure rows of one device and config: fp32, and the native precision where there is one."""
    a, native = t["audio_seconds_per_second"], t["precision_auto"]["precision"]
    rows = [(f"precision `auto` picks [{where}]",
             f"{native} ({t['precision_auto']['precision_reason']})"),
            (f"training audio-s/s, fp32 [{where}, {t['threads']} thread{'s' if t['threads'] != 1 else ''}]", fmt(a["fp32"], digits=1)),
            (f"model GFLOPs per audio second (train step, counted) [{where}]",
             f"{t['flops_per_audio_second'] / 1e9:.2f}"),
            (f"matmul peak GFLOP/s, fp32 [{where}]", fmt(t["matmul_peak_flops"]["fp32"], 1e-9, 0)),
            (f"utilisation fp32 (of fp32 peak) [{where}]", fmt(t["utilisation"]["fp32"], 100, 1, "%")),
            (f"utilisation fp32 on CPU time (FLOPs per CPU-second of both) [{where}]",
             fmt(t["utilisation"]["fp32_cpu_time"], 100, 1, "%"))]
    if native != "fp32":
        rows += [(f"training audio-s/s, {native} [{where}]", fmt(a[native], digits=1)),
                 (f"{native} / fp32 speed-up [{where}]", fmt(t[f"{native}_speedup"])),
                 (f"matmul peak GFLOP/s, {native} [{where}]",
                  fmt(t["matmul_peak_flops"][native], 1e-9, 0)),
                 (f"utilisation {native} (of {native} peak) [{where}]",
                  fmt(t["utilisation"][native], 100, 1, "%"))]
    return rows + [
        (f"data-pipeline efficiency ({native}) [{where}]", fmt(t["pipeline_efficiency"], digits=3)),
        (f"CPU share the process got (1 = all its threads busy) [{where}]", fmt(t["cpu_share"]))]


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = ["# Benchmark results", "",
             f"Machine: {m['cpu']}, {m['cores']} cores (torch's CPU capability "
             f"{m['cpu_capability']}; native bf16: {', '.join(m['cpu_bf16']) or 'none'}), "
             f"{m['memory_gb']:.0f} GB; Python {m['python']}, torch {m['torch']} with "
             f"{m['torch_threads']} threads (per-core figures: 1); load average "
             f"{m['load_average_start'][0]:.2f} at the start, {m['load_average_end'][0]:.2f} at "
             f"the end{'; ' + m['cuda'] if 'cuda' in m else ''}. "
             f"Settings: {'quick (smoke test sizes)' if r['settings']['quick'] else 'full'}, "
             f"configs {', '.join(f'`{c}`' for c in r['settings']['configs'])}, "
             f"{r['settings']['repeats']} runs per figure: "
             "median (min-max).", "", "## Targets", "", "| target | goal | measured | met |",
             "|---|---|---|---|"]
    lines += [f"| {t['target']} | {t['goal']} | {t['text']} | {'yes' if t['met'] else 'no'} |"
              for t in r["targets"]]
    lines += ["", "## Figures", "", "| figure | value |", "|---|---|"]
    rows = []
    if "synthesis_x_real_time_per_core" in r:
        rows.append(("synthesis, x real time per core", fmt(r["synthesis_x_real_time_per_core"], digits=0)))
    if "preparation_x_real_time_per_core" in r:
        rows.append(("preparation (MP3 decode + log-mel cache), x real time per core",
                     fmt(r["preparation_x_real_time_per_core"], digits=0)))
    for device, configs in r.get("training", {}).items():
        for config, t in configs.items():
            rows += training_rows(f"{device}, {config}", t)
    tr = r.get("transcription")
    if tr:
        for m_ in ("greedy", "beam", "beam_lm"):
            rows.append((f"transcription RTF, {m_}, {tr['short_files']} short files "
                         f"({tr['short_audio_seconds']:.0f} s)", fmt(tr["rtf_short"][m_], digits=4)))
            rows.append((f"transcription RTF, {m_}, one {tr['long_file_seconds'] / 60:.3g}-min file",
                         fmt(tr["rtf_long"][m_], digits=4)))
            rows.append((f"files per second, {m_}", fmt(tr["files_per_second"][m_], digits=1)))
        for k, v in tr["greedy_cpu_seconds_per_audio_second"].items():
            rows.append((f"greedy CPU-seconds per audio second, {k}", fmt(v, digits=4)))
    for name, v in r.get("peak_memory", {}).items():
        rows.append((f"peak RSS, {name.replace('_', ' ')}", fmt(v, digits=2, unit=" GB")))
    for kind, sc in r.get("scaling", {}).items():
        unit = "h" if kind == "training" else "s"
        pts = ", ".join(f"{p[next(iter(p))]:.3g} {unit}: {p['seconds']['median']:.2f} s"
                        for p in sc["points"])
        rows.append((f"scaling, {kind} ({pts})", "exponent " + fmt(sc["exponent"], digits=3)))
    lines += [f"| {a} | {b} |" for a, b in rows]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        return child(args)
    torch.set_num_threads(args.threads)
    groups = [g for g in args.groups.split(",") if g]
    unknown = set(groups) - set(GROUPS)
    if unknown:
        sys.exit(f"unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    bench = Bench(args)
    bench.work.mkdir(parents=True, exist_ok=True)
    bench.results["machine"] = machine_description(args.threads)
    t0 = time.perf_counter()
    bench.prepare()
    for g in GROUPS:  # fixed order: train saves the model transcribe and memory use
        if g in groups:
            t = time.perf_counter()
            print(f"bench: {g} ...", flush=True)
            getattr(bench, g)()
            bench.results.setdefault("group_seconds", {})[g] = time.perf_counter() - t
    r = bench.results
    r["machine"]["load_average_end"] = os.getloadavg()
    r["total_seconds"] = time.perf_counter() - t0
    r["targets"] = targets(r)
    out = Path(args.out or ("bench/tmp/quick" if args.quick else "bench"))
    write_json(out / "results.json", r)
    md = markdown(r)
    (out / "results.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
