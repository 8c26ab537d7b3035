"""Scoring a model on prepared splits: greedy CTC decoding, WER and CER per language."""

from __future__ import annotations

import torch

from asr.data import LanguageData, collate, eval_batches
from asr.decode import greedy_ids
from asr.features import FeatureStats
from asr.metrics import char_errors, word_errors
from asr.tokenizer import Tokenizer


@torch.no_grad()
def transcribe_split(model, data: LanguageData, tokenizer: Tokenizer, stats: FeatureStats | None,
                     device: torch.device, batch_frames: int = 40000,
                     autocast_dtype: torch.dtype | None = None) -> list[tuple[str, str, str]]:
    """Greedy transcripts of a whole split: [(id, reference, hypothesis)] in manifest order."""
    was_training = model.training
    model.eval()
    results = {}
    for indices in eval_batches(data, batch_frames):
        batch = collate(data, indices, stats).to(device)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            out = model(batch.feats, batch.feat_lens, locale=data.locale)
        for i, ids in zip(indices.tolist(), greedy_ids(out["log_probs"], out["out_lens"]), strict=True):
            results[i] = tokenizer.decode(ids)
    model.train(was_training)
    return [(r["id"], r["norm_text"], results[i]) for i, r in enumerate(data.records)]


def score(triples: list[tuple[str, str, str]]) -> dict:
    """{'cer', 'wer', 'utterances', ...} for [(id, reference, hypothesis)]."""
    refs = [t[1] for t in triples]
    hyps = [t[2] for t in triples]
    c, w = char_errors(refs, hyps), word_errors(refs, hyps)
    return {"cer": c.rate, "wer": w.rate, "utterances": len(triples),
            "ref_chars": c.reference_units, "ref_words": w.reference_units}


def validate(model, datasets: dict[str, LanguageData], tokenizers: dict[str, Tokenizer],
             stats: FeatureStats | None, device: torch.device,
             autocast_dtype: torch.dtype | None = None) -> dict[str, dict]:
    """Per-language dev scores, plus `mean` over languages."""
    scores = {
        loc: score(transcribe_split(model, data, tokenizers[loc], stats, device,
                                    autocast_dtype=autocast_dtype))
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
