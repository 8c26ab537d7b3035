"""CTC decoding: log-probabilities (T, V) -> token ids. Pure functions, kept out of the model."""

from __future__ import annotations

import torch

BLANK_ID = 0


def greedy_ids(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
    """Best path per utterance: argmax per frame, repeats merged, blanks removed.

    log_probs: (B, T, V); lengths: (B,) valid frames per utterance.
    """
    best = log_probs.argmax(dim=-1).cpu()  # (B, T)
    out = []
    for row, n in zip(best, lengths.tolist(), strict=True):
        row = row[:n]
        keep = torch.ones_like(row, dtype=torch.bool)
        keep[1:] = row[1:] != row[:-1]
        out.append(row[keep & (row != BLANK_ID)].tolist())
    return out
