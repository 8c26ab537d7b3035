"""Language identification, measured: every model kind, the alternatives, a harder condition.

Usage:
    python scripts/lid_study.py --exp EXP_DIR [--out docs/results/lid] [--hard-clips 40]

EXP_DIR is an `asr experiment` directory whose runs include the helpers' pretraining and
any of finetune, joint, progressive (transfer_full's, exp/transfer_full, makes them). For
each model, on the test speakers of its data:

  * the model's own language ID, as `asr evaluate` reports it (the head fitted after
    training, asr/lid.py), with its confusion matrix;
  * the alternatives on the same frozen encoder: a head fitted on the last shared block's
    statistics alone; for a fine-tuned model, on its own blocks alone and on the blocks it
    keeps frozen from the model it was fine-tuned from (its LID reference) alone; and
    CTC confidence (each language's head decodes; the most confident, by mean best-token
    log-probability per frame, wins);
  * a harder condition: test sentences spoken by eSpeak voice variants that no speaker of
    the corpus uses, at speaking rates and pitches outside the corpus's ranges, in white
    noise at 0-10 dB SNR (the corpus: 12-35 dB), identified through `transcribe --lang auto`'s
    own path (the per-file decision), with the probability it reports.

Writes <out>/lid.md (tables), <out>/lid.json and <out>/confusion_<model>.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from asr.device import cpu_model  # noqa: E402
from asr.fileio import read_jsonl, write_json, write_text  # noqa: E402

KINDS = ("pretrain", "joint", "finetune", "progressive")  # strategies whose models hold helpers
HARD_VARIANTS = ("m8", "klatt", "croak", "grandma", "belinda", "Andy", "linda", "max")
HARD_RATES_WPM = (90, 100, 215, 240)  # the corpus: 120-200
HARD_PITCHES = (10, 15, 85, 90)  # the corpus: 20-80 (plus eval speakers' odd fives)
HARD_SNR_DB = (0.0, 5.0, 10.0)  # white noise; the corpus: 12-35 dB


def find_models(exp: Path) -> dict[str, dict]:
    """kind -> {run_dir, data} of the first finished run of each kind (seed, then hours)."""
    found = {}
    for job_path in sorted((exp / "runs").glob("*/job.json")):
        job = json.loads(job_path.read_text())
        kind = job["strategy"]
        # summary.json: the run finished (an unfinished one holds its best model so far)
        if kind in KINDS and kind not in found and (job_path.parent / "summary.json").exists():
            found[kind] = {"run_dir": job_path.parent, "data": Path(job["data"])}
    return {k: found[k] for k in KINDS if k in found}


def test_data(model, package, data_dir: Path) -> dict:
    from asr.data import LanguageData
    from asr.prepare import feature_dir

    return {loc: LanguageData(loc, data_dir / loc / "test.jsonl", feature_dir(data_dir, loc, "test"),
                              package.tokenizers[loc], features=package.config.features)
            for loc in model.languages if (data_dir / loc / "test.jsonl").exists()}


@torch.no_grad()
def ctc_confidence(model, data, stats) -> list[str]:
    """Per utterance: the language whose CTC head is most confident (mean over frames of the
    best token's log-probability)."""
    from asr.data import collate, make_buckets

    picks = [None] * len(data)
    for bucket in make_buckets(data.frames, 20_000, 256):
        idx = bucket.tolist()
        b = collate(data, idx, stats)
        shared, out_lens = model.encode_shared(b.feats, b.feat_lens, locale=None)
        mask = (torch.arange(shared.shape[1])[None, :] < out_lens[:, None]).float()  # (B, T')
        scores = []
        for loc in model.languages:
            best = model.ctc_log_probs(shared, out_lens, loc).max(dim=-1).values  # (B, T')
            scores.append((best * mask).sum(1) / mask.sum(1))
        for row, k in enumerate(torch.stack(scores, 1).argmax(1).tolist()):
            picks[idx[row]] = model.languages[k]
    return picks


def part_accuracies(model, package, fit_dir: Path, tests: dict) -> dict[str, dict | None]:
    """Heads fitted like the model's (without the re-recorded copies) on parts of its
    statistics: the last shared block alone (what the head read before it pooled every block),
    and for a fine-tuned model that keeps a LID reference, its own blocks alone (LID as before
    the reference) and the reference's alone. {part: {locale: accuracy} or None}; all None for
    progressive models."""
    from asr.lid import fit_head, pooled, splits_from_dir
    from asr.model.heads import LanguageIDHead
    from asr.model.progressive import ProgressiveCTC

    names = ("last_block", "own_blocks", "reference_only")
    if isinstance(model, ProgressiveCTC):
        return dict.fromkeys(names)
    half = model.lid_statistics // 2
    parts = {"last_block": slice(-2 * model.config.d_model, None)}
    if model.lid_reference is not None:
        parts |= {"own_blocks": slice(half, None), "reference_only": slice(0, half)}
    splits = splits_from_dir(fit_dir, model.languages, package.tokenizers, package.config.features)
    cpu = torch.device("cpu")
    fit = [pooled(model, *splits[loc].fit, package.stats, cpu) for loc in model.languages]
    ys = torch.cat([torch.full((len(x),), k) for k, x in enumerate(fit)])
    test = {loc: pooled(model, data, list(range(len(data))), package.stats, cpu)
            for loc, data in tests.items()}
    out = dict.fromkeys(names)
    for name, cols in parts.items():
        head = LanguageIDHead(fit[0][:, cols].shape[1], len(model.languages))
        fit_head(head, torch.cat([x[:, cols] for x in fit]), ys, len(model.languages))
        out[name] = {loc: float((head(x[:, cols]).argmax(1) == model.languages.index(loc)).float().mean())
                     for loc, x in test.items()}
    return out


def hard_clips(locale: str, texts: list[str], n: int, seed: int) -> list[np.ndarray]:
    """n test sentences of `locale` in voices and channels outside the corpus (16 kHz float32)."""
    import soxr

    from asr.audio import SAMPLE_RATE
    from data_prep import espeak
    from data_prep.synth import apply_channel
    from data_prep.synth_plan import VOICES, Speaker

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        spk = Speaker(client_id=f"hard{i}", voice=VOICES[locale] + "+" + HARD_VARIANTS[i % len(HARD_VARIANTS)],
                      rate_wpm=int(rng.choice(HARD_RATES_WPM)), pitch=int(rng.choice(HARD_PITCHES)),
                      pitch_range=int(rng.integers(20, 90)), snr_db=float(rng.choice(HARD_SNR_DB)),
                      rt60_seconds=float(rng.uniform(0.2, 0.6)), gain_db=float(rng.uniform(-12, 6)),
                      tilt=float(rng.uniform(-0.6, 0.6)), noise_colour=0.0, gender="", age="")
        speech = espeak.synthesize(texts[i % len(texts)], spk.voice, spk.rate_wpm, spk.pitch,
                                   spk.pitch_range, seed=seed + i)
        x = apply_channel(speech, spk, np.random.default_rng(seed + i), 0.3, 0.3)
        out.append(soxr.resample(x, espeak.ESPEAK_SAMPLE_RATE, SAMPLE_RATE).astype(np.float32))
    return out


LOW_CONFIDENCE = 0.8  # below this LID probability, a top-two rescoring is measured


@torch.no_grad()
def top_two_rescoring(model, package, clips: list[np.ndarray], locale: str) -> dict:
    """On clips whose LID probability is below LOW_CONFIDENCE: how often the LID's first
    choice is right, and how often choosing between its top two by CTC confidence is."""
    from asr.data import batch_features
    from asr.features import log_mel

    low = right_lid = right_ctc = 0
    for x in clips:
        feats, lens = batch_features([log_mel(torch.from_numpy(x), package.config.features)],
                                     package.stats)
        shared, out_lens, stats = model.encode_shared(feats, lens, statistics=True)
        probs = torch.softmax(model.lid_logits(stats), -1)[0]
        top = probs.topk(2)
        if float(top.values[0]) >= LOW_CONFIDENCE:
            continue
        low += 1
        pair = [model.languages[int(i)] for i in top.indices]
        conf = [float(model.ctc_log_probs(shared, out_lens, loc).max(-1).values.mean()) for loc in pair]
        right_lid += pair[0] == locale
        right_ctc += pair[int(np.argmax(conf))] == locale
    return {"low_confidence": low, "lid_right": right_lid, "top_two_ctc_right": right_ctc}


def table(rows: list[list[str]], head: list[str]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(r) + " |" for r in rows]


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--exp", required=True, type=Path, help="experiment directory with finished runs")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "lid")
    p.add_argument("--hard-clips", type=int, default=40, help="hard-condition clips per language")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from asr import load_model
    from asr.evaluate import evaluate_model, lid_confusion, plot_lid_confusion
    from asr.lid import record_of
    from asr.package import load_package_model

    models = find_models(args.exp)
    if not models:
        raise SystemExit(f"{args.exp}: no finished pretrain/joint/finetune/progressive run")
    results, t0 = {}, time.time()
    for kind, m in models.items():
        print(f"{kind}: {m['run_dir']}", file=sys.stderr)
        model, package = load_package_model(m["run_dir"])
        record = record_of(package.meta)
        report = evaluate_model(m["run_dir"], m["data"], split="test")
        plot_lid_confusion(report, args.out / f"confusion_{kind}.png")
        true, pred, conf = lid_confusion(report)
        tests = test_data(model, package, m["data"])
        ctc = {loc: float(np.mean([p == loc for p in ctc_confidence(model, d, package.stats)]))
               for loc, d in tests.items()}
        parts = part_accuracies(model, package, m["data"], tests)
        # the harder condition, through transcribe --lang auto
        api = load_model(m["run_dir"])
        hard = {}
        for k, loc in enumerate(model.languages):
            texts = [r["text"] for r in read_jsonl(m["data"] / loc / "test.jsonl")]
            clips = hard_clips(loc, texts, args.hard_clips, seed=1000 * k)
            ts = api.transcribe_batch(clips, lang="auto")
            rescoring = top_two_rescoring(model, package, clips, loc)
            hard[loc] = {"accuracy": float(np.mean([t.language == loc for t in ts])),
                         "detected": {x: sum(t.language == x for t in ts) for x in model.languages},
                         "mean_probability_right": float(np.mean([t.language_probability for t in ts if t.language == loc] or [np.nan])),
                         "mean_probability_wrong": float(np.mean([t.language_probability for t in ts if t.language != loc] or [np.nan])),
                         **rescoring}
        results[kind] = {
            "run_dir": str(m["run_dir"]), "languages": model.languages,
            "recorded": record.to_dict() if record else None,
            "test": {loc: r["lid_accuracy"] for loc, r in report["languages"].items()},
            "test_cer": {loc: r["cer"]["rate"] for loc, r in report["languages"].items()},
            "confusion": {"true": true, "predicted": pred, "counts": conf.tolist()},
            "lid_reference": getattr(model, "lid_reference", None) is not None,
            "alternatives": parts | {"ctc_confidence": ctc},
            "hard": hard}
        print(json.dumps({kind: results[kind]["test"]}), file=sys.stderr)
    meta = {"machine": cpu_model(), "seconds": round(time.time() - t0), "hard_clips": args.hard_clips,
            "hard_condition": {"variants": HARD_VARIANTS, "rates_wpm": HARD_RATES_WPM,
                               "pitches": HARD_PITCHES, "snr_db": HARD_SNR_DB}}
    write_json(args.out / "lid.json", {"meta": meta, "models": results})
    write_text(args.out / "lid.md", format_md(results, meta))
    print(format_md(results, meta))
    return 0


def format_md(results: dict, meta: dict) -> str:
    lines = ["# Language identification, measured", "",
             f"`scripts/lid_study.py` on {meta['machine']}, {meta['seconds']} s. Accuracy in % per "
             "language: test speakers (voices absent from training), and the harder condition "
             f"({meta['hard_clips']} test sentences per language in eSpeak variants no corpus speaker "
             f"uses ({', '.join(meta['hard_condition']['variants'])}), rates "
             f"{meta['hard_condition']['rates_wpm']} wpm (corpus 120-200), pitches "
             f"{meta['hard_condition']['pitches']} (corpus 20-80), white noise at "
             f"{meta['hard_condition']['snr_db']} dB SNR (corpus 12-35), through "
             "`transcribe --lang auto`).", ""]
    for kind, r in results.items():
        langs = r["languages"]
        alt = r["alternatives"]
        own = ("fitted head: the reference's and its own shared blocks (the model's)"
               if r.get("lid_reference") else "fitted head: every shared block (the model's)")
        rows = [[own, *[pct(r["test"].get(x)) for x in langs]],
                *[[label, *[pct(alt[name].get(x)) for x in langs]] for name, label in (
                    ("own_blocks", "fitted head: its own (fine-tuned) blocks only"),
                    ("reference_only", "fitted head: the reference's blocks only"),
                    ("last_block", "fitted head: last block's statistics only")) if alt.get(name)],
                ["CTC confidence, every head", *[pct(r["alternatives"]["ctc_confidence"].get(x)) for x in langs]],
                ["harder condition, --lang auto", *[pct(r["hard"][x]["accuracy"]) for x in langs]],
                ["recorded at fit (held-out speakers)",
                 *[pct((r["recorded"] or {}).get("accuracy", {}).get(x)) for x in langs]],
                ["test CER (own head)", *[pct(r["test_cer"].get(x)) for x in langs]]]
        lines += [f"## {kind}: `{Path(r['run_dir']).name}`", "", *table(rows, ["", *langs]), "",
                  "Confusion on test speakers (rows: spoken; columns: identified as):", "",
                  *table([[t, *map(str, row)] for t, row in zip(r["confusion"]["true"], r["confusion"]["counts"], strict=True)],
                         ["spoken", *r["confusion"]["predicted"]]), "",
                  "Harder condition, identified as:", "",
                  *table([[x, *[str(r["hard"][x]["detected"][y]) for y in langs],
                           f"{r['hard'][x]['mean_probability_right']:.2f}",
                           f"{r['hard'][x]['mean_probability_wrong']:.2f}"] for x in langs],
                         ["spoken", *langs, "p (right)", "p (wrong)"]), "",
                  f"Harder condition, clips with LID probability below {LOW_CONFIDENCE}: right by "
                  "the LID's first choice, and by choosing between its top two by CTC confidence "
                  "(mean best-token log-probability):", "",
                  *table([[x, str(r["hard"][x]["low_confidence"]), str(r["hard"][x]["lid_right"]),
                           str(r["hard"][x]["top_two_ctc_right"])] for x in langs],
                         ["spoken", "low-confidence clips", "LID first choice right",
                          "top two by CTC right"]), ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
