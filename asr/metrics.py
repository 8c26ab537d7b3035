"""Error rates on normalised text, pooled over a corpus, and the one scorer built on them.

Corpus-level rates are (S + D + I) / N over all reference units, not a mean of per-utterance
rates, as in every ASR toolkit's scoring. Which rates a language gets, and which one judges
it, are the language table's facts (asr/languages.py): every language gets CER and WER; a
language without word breaks (zh-CN, ja, th) is judged by CER and its WER is reported but
marked not meaningful; a language with romanised units adds their error rate (zh-CN: "ser",
toned pinyin syllables).

`score_texts(refs, hyps, locale)` is the scorer of validation, `asr evaluate` and the
experiment ledger; the functions above it count edits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import jiwer
import numpy as np

from asr.languages import language

BOOTSTRAP_RESAMPLES = 1000
CI_LEVEL = 0.95  # confidence of the bootstrap interval


@dataclass(frozen=True)
class ErrorCounts:
    substitutions: int
    deletions: int
    insertions: int
    hits: int

    @property
    def reference_units(self) -> int:
        return self.substitutions + self.deletions + self.hits

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """Errors per reference unit; an empty reference counts insertions against one unit."""
        return self.errors / max(self.reference_units, 1)

    def to_dict(self) -> dict:
        return asdict(self) | {"rate": self.rate}

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(self.substitutions + other.substitutions, self.deletions + other.deletions,
                           self.insertions + other.insertions, self.hits + other.hits)


def _chars(text: str) -> str:
    # Spaces are not characters to be recognised: CER counts letters only, so that zh-CN
    # (no spaces) and spaced-language CER mean the same thing.
    return " ".join(text.replace(" ", ""))


def utterance_counts(refs: list[str], hyps: list[str]) -> list[ErrorCounts]:
    """Word-level edit counts of each (reference, hypothesis) pair, from one alignment pass."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    out = [ErrorCounts(0, 0, len(h.split()), 0) for h in hyps]  # empty reference: all insertions
    # jiwer refuses an empty reference, yet an empty reference with a non-empty hypothesis is
    # a real outcome: those pairs keep the count above.
    kept = [k for k, r in enumerate(refs) if r.strip()]
    if kept:
        aligned = jiwer.process_words([refs[k] for k in kept], [hyps[k] for k in kept])
        for k, chunks in zip(kept, aligned.alignments, strict=True):
            n = {"equal": 0, "substitute": 0, "delete": 0, "insert": 0}
            for c in chunks:
                n[c.type] += (c.hyp_end_idx - c.hyp_start_idx) if c.type == "insert" \
                    else (c.ref_end_idx - c.ref_start_idx)
            out[k] = ErrorCounts(n["substitute"], n["delete"], n["insert"], n["equal"])
    return out


def _total(counts: Iterable[ErrorCounts]) -> ErrorCounts:
    return sum(counts, ErrorCounts(0, 0, 0, 0))


def word_errors(refs: list[str], hyps: list[str]) -> ErrorCounts:
    """Word-level edit counts over a corpus of normalised texts."""
    return _total(utterance_counts(refs, hyps))


def char_errors(refs: list[str], hyps: list[str]) -> ErrorCounts:
    """Character-level edit counts (spaces ignored) over a corpus of normalised texts."""
    return word_errors([_chars(r) for r in refs], [_chars(h) for h in hyps])


def wer(refs: list[str], hyps: list[str]) -> float:
    return word_errors(refs, hyps).rate


def cer(refs: list[str], hyps: list[str]) -> float:
    return char_errors(refs, hyps).rate


def bootstrap_ci(errors: np.ndarray, units: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = 0, level: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of a corpus error rate sum(errors) / sum(units).

    Utterances (not words) are resampled with replacement, since errors within an utterance
    are correlated (Bisani & Ney 2004). errors, units: (N,). Seeded: the same input gives the
    same interval.
    """
    errors, units = np.asarray(errors), np.asarray(units)
    n = len(errors)
    if n == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    rates = []
    for start in range(0, resamples, 100):  # chunks bound memory at 100 x N indices
        idx = rng.integers(0, n, size=(min(100, resamples - start), n))  # (R, N)
        rates.append(errors[idx].sum(axis=1) / np.maximum(units[idx].sum(axis=1), 1))
    rates = np.concatenate(rates)
    alpha = (1.0 - level) / 2
    return float(np.quantile(rates, alpha)), float(np.quantile(rates, 1 - alpha))


def _metric(refs: list[str], hyps: list[str], unit: str, meaningful: bool, seed: int,
            intervals: bool) -> dict:
    """One metric's entry of `score_texts`; refs/hyps already in that metric's words."""
    per = utterance_counts(refs, hyps)
    total = _total(per)
    errors = [c.errors for c in per]
    units = [c.reference_units for c in per]
    ci = list(bootstrap_ci(np.array(errors, dtype=np.int64), np.array(units, dtype=np.int64),
                           seed=seed)) if intervals else None
    return total.to_dict() | {
        "unit": unit, "errors": total.errors, "reference_units": total.reference_units,
        "ci95": ci, "meaningful": meaningful,
        "per_utterance_errors": errors, "per_utterance_units": units}


def score_texts(refs: list[str], hyps: list[str], locale: str, seed: int = 0,
                intervals: bool = True, metrics: Iterable[str] | None = None) -> dict[str, dict]:
    """Every error rate of `locale`'s language for normalised references and hypotheses.

    Returns {metric: entry} for the language's metrics (`Language.metrics`: "cer", "wer", and
    e.g. "ser" for zh-CN), or only those named in `metrics`. Each entry:

      rate               errors / reference_units over the corpus (float)
      ci95               [low, high] percentile bootstrap interval over utterances
                         (BOOTSTRAP_RESAMPLES, `seed`); None when `intervals` is False, which
                         keeps validation cheap
      errors, reference_units, substitutions, deletions, insertions, hits   corpus counts (int)
      unit               what is counted: "character", "word" or the romanised unit
      meaningful         False for WER of a language without word breaks
      per_utterance_errors, per_utterance_units   lists of int, in input order

    CER ignores spaces; WER splits on spaces; a romanised rate is WER over romanised text.
    """
    lang = language(locale)
    wanted = lang.metrics if metrics is None else tuple(metrics)
    unknown = [m for m in wanted if m not in lang.metrics]
    if unknown:
        raise ValueError(f"{locale} has no metric {', '.join(unknown)}; it has {', '.join(lang.metrics)}")
    out = {}
    for name in wanted:
        if name == "cer":
            r, h, unit = [_chars(x) for x in refs], [_chars(x) for x in hyps], "character"
        elif name == "wer":
            r, h, unit = refs, hyps, "word"
        else:  # the romanisation's own rate
            rom = lang.romanisation
            r, h, unit = [rom.text(x) for x in refs], [rom.text(x) for x in hyps], rom.unit
        meaningful = lang.wer_meaningful if name == "wer" else True
        out[name] = _metric(list(r), list(h), unit, meaningful, seed, intervals)
    return out
