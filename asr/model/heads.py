"""Output heads on top of the encoder, and the CTC loss computed outside them.

Per-language CTC heads are one `nn.ModuleDict` keyed by Common Voice locale. Locale codes are
used as keys unchanged: ModuleDict keys may hold '-' (`zh-CN`), only '.' is forbidden, and no
locale contains one, so state-dict names read `heads.zh-CN.weight`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asr.tokenizer import BLANK_ID  # CTC blank in every vocabulary, reserved by the tokenizer


def check_locale_key(locale: str) -> str:
    """A locale usable as a module key; '.' would break state-dict names."""
    if not isinstance(locale, str) or not locale or "." in locale:
        raise ValueError(f"locale {locale!r} cannot name a module: use a Common Voice code such as 'de' or 'zh-CN'")
    return locale


class CTCHeads(nn.ModuleDict):
    """One `Linear(d_model, V_l)` per locale; forward gives float32 log-probs (B, T, V_l)."""

    def __init__(self, d_model: int, vocab_sizes: dict[str, int]):
        super().__init__()
        self.d_model = d_model
        for locale, vocab_size in vocab_sizes.items():
            self.add(locale, vocab_size)

    def add(self, locale: str, vocab_size: int) -> None:
        """A freshly initialised head for a new locale."""
        if locale in self:
            raise ValueError(f"a CTC head for {locale!r} already exists")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 2:
            raise ValueError(f"{locale}: vocab size must be an int >= 2 (blank + one token), got {vocab_size!r}")
        self[check_locale_key(locale)] = nn.Linear(self.d_model, vocab_size)

    def reset(self, locale: str) -> None:
        """Replace `locale`'s head by a freshly initialised one of the same vocabulary."""
        old = self.head(locale)
        self[locale] = nn.Linear(self.d_model, old.out_features).to(old.weight.device)

    def head(self, locale: str) -> nn.Linear:
        """`locale`'s output layer; a KeyError that names the model's locales if it has none."""
        if locale not in self:
            raise KeyError(f"no CTC head for {locale!r}; this model has {', '.join(self.keys())}")
        return self[locale]

    def forward(self, x: torch.Tensor, locale: str) -> torch.Tensor:
        """x (B, T, D) -> log-probs (B, T, V_locale) float32."""
        return F.log_softmax(self.head(locale)(x).float(), dim=-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real frames: x (B, T, D), mask (B, T) bool True = real -> (B, D)."""
    m = mask[..., None].to(x.dtype)  # (B, T, 1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def pooled_statistics(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and standard deviation over real frames: x (B, T, W), mask (B, T) -> (B, 2W) float32."""
    x = x.float()
    mean = masked_mean(x, mask)  # (B, W)
    var = masked_mean((x - mean[:, None, :]) ** 2, mask)  # (B, W)
    return torch.cat([mean, var.clamp(min=0).sqrt()], dim=-1)


class LanguageIDHead(nn.Module):
    """Utterance statistics (B, S), standardised, then Linear -> language logits (B, L).

    The statistics are the mean and standard deviation of every shared block's output
    (`encode_shared(..., statistics=True)`). Fitted on a frozen encoder after training
    (asr/lid.py), never by the recogniser's loss, so its parameters do not train. `center`
    and `scale` standardise with the fit set's own; a fresh head gives every language logit 0.
    """

    def __init__(self, n_statistics: int, n_languages: int):
        super().__init__()
        self.register_buffer("center", torch.zeros(n_statistics))
        self.register_buffer("scale", torch.ones(n_statistics))
        self.proj = nn.Linear(n_statistics, n_languages)
        self.reset()

    def reset(self) -> None:
        """Unfitted: every logit 0, identity standardisation."""
        with torch.no_grad():
            self.proj.weight.zero_()
            self.proj.bias.zero_()
            self.center.zero_()
            self.scale.fill_(1.0)
        self.requires_grad_(False)

    def grow(self, n_new: int = 1) -> None:
        """Room for `n_new` more languages; the whole head is unfitted until fitted again."""
        old = self.proj
        self.proj = nn.Linear(old.in_features, old.out_features + n_new,
                              device=old.weight.device, dtype=old.weight.dtype)
        self.reset()

    def forward(self, stats: torch.Tensor) -> torch.Tensor:
        return self.proj((stats.float() - self.center) / self.scale)  # (B, L)


def ctc_loss(log_probs: torch.Tensor, targets: torch.Tensor, input_lens: torch.Tensor,
             target_lens: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """CTC loss from log-probs (B, T, V) as the model returns them (blank = 0).

    targets: (B, S) padded or (sum of target_lens,) concatenated token ids.
    reduction: "mean" = each utterance's summed negative log-likelihood, averaged over the
    batch (long utterances weigh more, as their frames do; the trainer's convention);
    "mean_per_token" = each utterance's loss divided by its target length, then averaged
    (PyTorch's "mean"; evens out languages whose tokenizers give longer targets);
    "none" = (B,) per utterance. Impossible alignments (target longer than the frames allow)
    give zero loss and zero gradient rather than inf.
    """
    if reduction not in ("mean", "mean_per_token", "none"):
        raise ValueError(f"reduction must be 'mean', 'mean_per_token' or 'none', got {reduction!r}")
    per_utt = F.ctc_loss(log_probs.float().transpose(0, 1), targets, input_lens, target_lens,
                         blank=BLANK_ID, reduction="none", zero_infinity=True)  # (B,)
    if reduction == "none":
        return per_utt
    if reduction == "mean_per_token":
        per_utt = per_utt / target_lens.to(per_utt.dtype).clamp(min=1.0)
    return per_utt.mean()
