"""Scoring a model on prepared splits, per language.

Two users: training's validation (`validate`, greedy, on the feature cache, lean) and
`asr evaluate` (`evaluate_model`): greedy or beam (+LM) decoding of a split, every error rate
of the language (asr.metrics.score_texts: CER, WER, and e.g. pinyin SER for zh-CN) on
normalised text, bootstrap 95% intervals, S/D/I counts, hours, the worst utterances, as JSON
and Markdown. A language without word breaks (zh-CN) is judged by CER; its WER is shown but
marked not meaningful (the language table, asr/languages.py, says which).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.config import FeatureConfig, check_features, check_input_bins
from asr.data import LanguageData, batch_features, collate, eval_batches, make_buckets
from asr.decode import DecodeConfig, Decoder, greedy_hypotheses
from asr.device import eval_batch_frames
from asr.features import FeatureStats, log_mel, num_frames
from asr.fileio import read_jsonl
from asr.languages import language
from asr.lid import record_of
from asr.metrics import BOOTSTRAP_RESAMPLES, score_texts
from asr.tokenizer import Tokenizer


@torch.no_grad()
def transcribe_split(model, data: LanguageData, tokenizer: Tokenizer, stats: FeatureStats | None,
                     device: torch.device, batch_frames: int | None = None,
                     autocast_dtype: torch.dtype | None = None) -> list[tuple[str, str, str]]:
    """Greedy transcripts of a whole split: [(id, reference, hypothesis)] in manifest order."""
    was_training = model.training
    model.eval()
    results = {}
    for indices in eval_batches(data, batch_frames or eval_batch_frames(device)):
        batch = collate(data, indices, stats).to(device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            out = model(batch.feats, batch.feat_lens, locale=data.locale)
        hyps = greedy_hypotheses(out["log_probs"], out["out_lens"])
        for i, hyp in zip(indices.tolist(), hyps, strict=True):
            results[i] = tokenizer.decode(hyp.ids)
    model.train(was_training)
    return [(r["id"], r["norm_text"], results[i]) for i, r in enumerate(data.records)]


def score(triples: list[tuple[str, str, str]], locale: str) -> dict:
    """{'cer', 'wer', 'utterances', 'ref_chars', 'ref_words'} for [(id, reference, hypothesis)]
    of `locale`: `score_texts` without intervals or romanised rates, cheap enough for every
    validation."""
    refs = [t[1] for t in triples]
    hyps = [t[2] for t in triples]
    s = score_texts(refs, hyps, locale, intervals=False, metrics=("cer", "wer"))
    return {"cer": s["cer"]["rate"], "wer": s["wer"]["rate"], "utterances": len(triples),
            "ref_chars": s["cer"]["reference_units"], "ref_words": s["wer"]["reference_units"]}


def validate(model, datasets: dict[str, LanguageData], tokenizers: dict[str, Tokenizer],
             stats: FeatureStats | None, device: torch.device,
             autocast_dtype: torch.dtype | None = None) -> dict[str, dict]:
    """Per-language dev scores, plus `mean` over languages."""
    scores = {
        loc: score(transcribe_split(model, data, tokenizers[loc], stats, device,
                                    autocast_dtype=autocast_dtype), loc)
        for loc, data in datasets.items()
    }
    if scores:
        scores["mean"] = {k: sum(s[k] for s in scores.values()) / len(scores) for k in ("cer", "wer")}
    return scores


def metric_value(scores: dict[str, dict], name: str) -> float:
    """Look up `mean_cer`, `zh-CN_cer`, `de_wer`, ... in validation scores (lower is better)."""
    where, _, metric = name.rpartition("_")
    if where not in scores or metric not in ("cer", "wer"):
        raise ValueError(f"select metric {name!r}: expected mean_cer, mean_wer or <locale>_cer|wer "
                         f"for one of {sorted(scores)}")
    return scores[where][metric]


def format_scores(scores: dict[str, dict], step: int | None = None) -> str:
    """A small table of per-language CER/WER."""
    head = f"step {step}: " if step is not None else ""
    lines = [f"{head}{'language':<8} {'CER':>7} {'WER':>7}"]
    for loc, s in scores.items():
        lines.append(f"{'':{len(head)}}{loc:<8} {100 * s['cer']:6.1f}% {100 * s['wer']:6.1f}%")
    return "\n".join(lines)


# ---- `asr evaluate`: a model file on a prepared split, with confidence intervals ------------
# Everything below reads a split the way a user would judge a finished model: greedy or beam
# (+LM) decoding, error counts, bootstrap intervals, the worst utterances. Training's
# validation above stays greedy and lean.

WORST_SHOWN = 10


def score_locale(locale: str, rows: list[dict], seed: int = 0) -> dict:
    """rows [{id, reference, hypothesis, duration}] -> the report of one language: every
    metric of `score_texts` (per-utterance lists dropped), its primary metric, the worst
    utterances by that metric."""
    refs = [r["reference"] for r in rows]
    hyps = [r["hypothesis"] for r in rows]
    primary = language(locale).primary_metric
    report = {"locale": locale, "utterances": len(rows),
              "hours": sum(r.get("duration", 0.0) for r in rows) / 3600,
              "primary_metric": primary}
    metrics = score_texts(refs, hyps, locale, seed=seed)
    errs, units = metrics[primary]["per_utterance_errors"], metrics[primary]["per_utterance_units"]
    for name, entry in metrics.items():
        entry.pop("per_utterance_errors")
        entry.pop("per_utterance_units")
        report[name] = entry
    order = sorted(range(len(rows)), key=lambda i: (-errs[i], -errs[i] / max(units[i], 1), rows[i]["id"]))
    report["worst"] = [{"id": rows[i]["id"], "errors": int(errs[i]),
                        "rate": float(errs[i] / max(units[i], 1)), "reference": refs[i],
                        "hypothesis": hyps[i]} for i in order[:WORST_SHOWN] if errs[i] > 0]
    return report


def _split_features(data_dir: Path, locale: str, split: str, records: list[dict],
                    features: FeatureConfig):
    """(function id -> (T, F) float32 features, the cache or None): the split's feature cache,
    else (no usable cache) the audio. A cache computed with other settings than the model's
    `features` is refused with FeatureMismatchError, never silently replaced."""
    from asr.feature_cache import FeatureCache, FeatureCacheError
    from asr.prepare import feature_dir

    cache = None
    try:
        cache = FeatureCache.open(feature_dir(data_dir, locale, split))
    except FeatureCacheError:
        pass  # never built (or damaged): the features come from the audio
    if cache is not None:
        check_features(features, cache.config, where=str(cache.dir))
    by_id = {r["id"]: r for r in records}

    def get(utt_id: str) -> np.ndarray:
        if cache is not None and utt_id in cache:
            return np.asarray(cache[utt_id], dtype=np.float32)
        return log_mel(load_audio(by_id[utt_id]["audio"]), features).numpy()

    return get, cache


@torch.no_grad()
def decode_split(model, package, data_dir: str | Path, locale: str, split: str, decoder,
                 device: torch.device, batch_frames: int | None = None, progress: bool = False) -> dict:
    """Decode every utterance of data/<locale>/<split>.jsonl; returns rows and counts."""
    data_dir = Path(data_dir)
    manifest = data_dir / locale / f"{split}.jsonl"
    records = read_jsonl(manifest)
    features = package.config.features
    check_input_bins(features, model.config.n_mels, len(package.stats.mean),
                     where=str(package.path or "the model package"))
    get, cache = _split_features(data_dir, locale, split, records, features)
    frames = np.array([cache.frames(r["id"]) if cache is not None and r["id"] in cache
                       else num_frames(int(r["duration"] * SAMPLE_RATE), features.hop_length)
                       for r in records])
    rows, failed, lid = {}, [], {}
    # Language ID: which language the head picks, for models with a fitted one (see lid_ready)
    detect = lid_ready(model, package)
    bar = tqdm(total=len(records), disable=not progress, desc=f"{locale} {split}", unit="utt")
    for batch in make_buckets(frames, batch_frames or eval_batch_frames(device), 128):
        feats, keep = [], []
        for i in batch.tolist():
            try:
                feats.append(torch.from_numpy(get(records[i]["id"])))  # (T, F)
            except AudioError as e:
                failed.append({"id": records[i]["id"], "reason": str(e)})
                continue
            keep.append(i)
        bar.update(len(batch))
        if not keep:
            continue
        x, lens = batch_features(feats, package.stats)  # (B, T, F), (B,)
        # language unknown when detecting: a progressive model then runs all its columns
        if detect:
            shared, out_lens, stats = model.encode_shared(x.to(device), lens.to(device),
                                                          statistics=True)
            picks = model.lid_logits(stats).argmax(dim=-1).tolist()
            lid |= {i: model.languages[k] for i, k in zip(keep, picks, strict=True)}
        else:
            shared, out_lens = model.encode_shared(x.to(device), lens.to(device), locale=locale)
        log_probs = model.ctc_log_probs(shared, out_lens, locale)  # (B, T', V)
        for i, hyp in zip(keep, decoder(log_probs, out_lens, locale), strict=True):
            r = records[i]
            rows[i] = {"id": r["id"], "reference": r["norm_text"], "duration": r["duration"],
                       "hypothesis": package.tokenizers[locale].decode(hyp.ids)}
    bar.close()
    return {"rows": [rows[i] for i in sorted(rows)], "failed": failed,
            "feature_source": "cache" if cache is not None else "audio",
            "lid_predicted": [lid[i] for i in sorted(lid)] if detect else None}


def lid_ready(model, package) -> bool:
    """Whether the model can identify languages: several of them, a language-independent
    path to its LID head, and that head fitted (asr/lid.py)."""
    return (len(model.languages) > 1 and not model.lid_needs_locale
            and record_of(package.meta) is not None)


def evaluate_model(model_path: str | Path, data_dir: str | Path, split: str = "test",
                   locales: list[str] | None = None, decode: DecodeConfig | None = None,
                   lm_paths: dict[str, str] | None = None, device: str = "cpu", seed: int = 0,
                   progress: bool = False) -> dict:
    """Score a model file on a prepared split per language (see `format_report`)."""
    from asr.package import load_package_model, resolve_model_path

    decode = decode or DecodeConfig()
    model, package = load_package_model(model_path, device=device)
    locales = locales or [loc for loc in model.languages
                          if (Path(data_dir) / loc / f"{split}.jsonl").exists()]
    missing = [loc for loc in locales if loc not in model.languages]
    if missing:
        raise ValueError(f"{resolve_model_path(model_path)} has no head for {', '.join(missing)} "
                         f"(it has {', '.join(model.languages)})")
    if not locales:
        raise FileNotFoundError(f"{data_dir}: no {split}.jsonl for any of {', '.join(model.languages)}")
    decoder = Decoder(package.tokenizers, decode, lm_paths)
    report = {"model": str(resolve_model_path(model_path)), "data": str(data_dir), "split": split,
              "decode": {**decode.__dict__, "lm_path": None, "lm_paths": dict(lm_paths or {})},
              "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "seed": seed, "unit": "utterance"},
              "model_languages": list(model.languages), "languages": {}}
    for loc in locales:
        decoded = decode_split(model, package, data_dir, loc, split, decoder, torch.device(device),
                               progress=progress)
        lang = score_locale(loc, decoded["rows"], seed=seed)
        lang["failed"] = decoded["failed"]
        lang["feature_source"] = decoded["feature_source"]
        picks = decoded["lid_predicted"]
        lang["lid_accuracy"] = None if picks is None else sum(p == loc for p in picks) / max(len(picks), 1)
        lang["lid_predicted"] = None if picks is None else {
            k: picks.count(k) for k in model.languages}  # a row of the confusion matrix
        report["languages"][loc] = lang
    return report


def lid_confusion(report: dict) -> tuple[list[str], list[str], np.ndarray] | None:
    """(true languages, predicted languages, counts (T, P)) of an evaluation, or None."""
    rows = {loc: r["lid_predicted"] for loc, r in report["languages"].items() if r.get("lid_predicted")}
    if not rows:
        return None
    cols = report["model_languages"]
    return list(rows), cols, np.array([[rows[t][p] for p in cols] for t in rows], dtype=np.int64)


def plot_lid_confusion(report: dict, path: Path) -> bool:
    """The confusion matrix as a PNG (row-normalised shading, counts written in); False when
    the evaluation has no language ID."""
    conf = lid_confusion(report)
    if conf is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    true, pred, m = conf
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.1 * len(pred) + 2, 0.9 * len(true) + 1.6))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(true)):
        for j in range(len(pred)):
            ax.text(j, i, f"{m[i, j]}\n{100 * share[i, j]:.0f}%", ha="center", va="center",
                    fontsize=8, color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(pred)), pred)
    ax.set_yticks(range(len(true)), true)
    ax.set_xlabel("identified as")
    ax.set_ylabel("spoken language")
    ax.set_title(f"Language ID on {report['split']}: {Path(report['model']).parent.name}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return True


def report_name(split: str, decode: DecodeConfig, lm_paths: dict | None) -> str:
    """File stem for a report: eval_test, eval_test_beam8, eval_test_beam8_lm."""
    name = f"eval_{split}"
    if decode.beam_size > 1:
        name += f"_beam{decode.beam_size}"
    return name + ("_lm" if lm_paths else "")


def format_report(report: dict) -> str:
    """The evaluation as Markdown: a table per metric, then the worst utterances per language."""
    d = report["decode"]
    how = "greedy" if d["beam_size"] == 1 and not d["lm_paths"] else f"beam {d['beam_size']}"
    if d["lm_paths"]:
        how += f", LM weight {d['lm_weight']}, word score {d['word_score']}"
    lines = [f"# Evaluation: {report['split']} split", "",
             f"Model `{report['model']}`, data `{report['data']}`, decoding: {how}. "
             "Rates in %, 95% bootstrap intervals over utterances "
             f"({report['bootstrap']['resamples']} resamples, seed {report['bootstrap']['seed']}).",
             "", "| language | utts | hours | WER | WER 95% CI | CER | CER 95% CI | S / D / I (primary) "
             "| language ID |", "|---|---|---|---|---|---|---|---|---|"]
    for loc, r in report["languages"].items():
        p = r[r["primary_metric"]]
        wer = f"{100 * r['wer']['rate']:.1f}" + ("" if r["wer"]["meaningful"] else "*")
        lines.append(
            f"| {loc} | {r['utterances']} | {r['hours']:.3f} | {wer} | "
            f"{100 * r['wer']['ci95'][0]:.1f}-{100 * r['wer']['ci95'][1]:.1f} | {100 * r['cer']['rate']:.1f} | "
            f"{100 * r['cer']['ci95'][0]:.1f}-{100 * r['cer']['ci95'][1]:.1f} | "
            f"{r['primary_metric'].upper()} {p['substitutions']} / {p['deletions']} / {p['insertions']} | "
            + ("-" if r.get("lid_accuracy") is None else f"{100 * r['lid_accuracy']:.1f}") + " |")
    conf = lid_confusion(report)
    if conf is not None:
        true, pred, m = conf
        lines += ["", "Language ID: % of utterances whose language-ID head picks the right "
                  f"language among {len(pred)}. Confusion (rows: spoken, columns: identified as):",
                  "", "| spoken \\ identified | " + " | ".join(pred) + " |",
                  "|---|" + "---|" * len(pred)]
        lines += [f"| {t} | " + " | ".join(str(v) for v in row) + " |"
                  for t, row in zip(true, m.tolist(), strict=True)]
    unsegmented = [loc for loc, r in report["languages"].items() if not r["wer"]["meaningful"]]
    if unsegmented:
        lines += ["", f"\\* WER is not meaningful for {', '.join(unsegmented)} (no word "
                  "segmentation): judge it by CER."]
    for loc, r in report["languages"].items():
        lines += ["", f"## {loc}: worst utterances by {r['primary_metric'].upper()} errors", "",
                  "| id | errors | reference | hypothesis |", "|---|---|---|---|"]
        lines += [f"| {w['id']} | {w['errors']} | {w['reference']} | {w['hypothesis']} |"
                  for w in r["worst"]]
        if r["failed"]:
            lines += ["", f"{len(r['failed'])} utterances could not be read: "
                      + "; ".join(f"{f['id']} ({f['reason']})" for f in r["failed"][:5])]
    return "\n".join(lines) + "\n"
