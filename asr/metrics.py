"""Error rates on normalised text: WER and CER with jiwer, pooled over a corpus.

Corpus-level rates are (S + D + I) / N over all reference units, not a mean of per-utterance
rates, as in every ASR toolkit's scoring. For zh-CN words are not delimited, so CER is the
metric; WER on unsegmented Chinese is reported but not meaningful.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import jiwer


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


def _chars(text: str) -> str:
    # Spaces are not characters to be recognised: CER counts letters only, so that zh-CN
    # (no spaces) and European CER mean the same thing.
    return " ".join(text.replace(" ", ""))


def _counts(refs: list[str], hyps: list[str]) -> ErrorCounts:
    # jiwer refuses an empty reference, yet an empty reference with a non-empty hypothesis is
    # a real outcome (all insertions): count those pairs by hand.
    s = d = i = h = 0
    pairs = [(r, y) for r, y in zip(refs, hyps, strict=True) if r.strip()]
    for r, y in zip(refs, hyps, strict=True):
        if not r.strip():
            i += len(y.split())
    if pairs:
        out = jiwer.process_words([r for r, _ in pairs], [y for _, y in pairs])
        s, d, i, h = s + out.substitutions, d + out.deletions, i + out.insertions, h + out.hits
    return ErrorCounts(s, d, i, h)


def word_errors(refs: list[str], hyps: list[str]) -> ErrorCounts:
    """Word-level edit counts over a corpus of normalised texts."""
    return _counts(refs, hyps)


def char_errors(refs: list[str], hyps: list[str]) -> ErrorCounts:
    """Character-level edit counts (spaces ignored) over a corpus of normalised texts."""
    return _counts([_chars(r) for r in refs], [_chars(h) for h in hyps])


def wer(refs: list[str], hyps: list[str]) -> float:
    return word_errors(refs, hyps).rate


def cer(refs: list[str], hyps: list[str]) -> float:
    return char_errors(refs, hyps).rate
