"""The multilingual CTC model: Conformer blocks, some shared and some per language, one CTC
head per language and a language-ID head, built from a `ModelConfig` and vocab sizes alone.

Path of one batch (one language per batch):

    feats (B, T, n_mels)
      -> front end (4x subsampling; shared, or per language when the lowest block is)
      -> layout[0] per-language blocks   `below[locale]`
      -> layout[1] shared blocks         `shared`         => "shared" output; each block's
                                                             mean and std feed the LID head
      -> layout[2] per-language blocks   `above[locale]`
      -> CTC head                        `heads[locale]`  => log-probs (B, T', V_locale)

Parameter names (for freezing and checkpoints): `frontend.*` or `frontends.<locale>.*`,
`below.<locale>.<i>.*`, `shared.<i>.*`, `above.<locale>.<i>.*`, `heads.<locale>.*`, `lid.*`,
and `lid_reference.*` in a fine-tuned model (`keep_lid_reference`).

A fine-tuned model keeps its languages' LID. Fine-tuning on one language moves the shared
blocks away from what separated the others (transfer_full, helpers' model fine-tuned on 0.05 h
of zh-CN: its helpers' test CER went from 1-15% to 73-88%), and LID read from them identified
only 94.6 / 96.7 / 94.8 / 93.9 / 98.3% of de / fr / es / it / zh-CN test speakers, whatever
head was fitted on them (docs/results/lid). So `keep_lid_reference` keeps a frozen copy of
the start model's language-independent path (front end and shared blocks), `lid_reference`,
which only language ID reads, beside the fine-tuned blocks: both statistics side by side, as
a progressive model reads its columns. Same model and fit data: 98.9 / 99.5 / 99.2 / 99.7 /
99.1% (the copy alone 98.9 / 99.5 / 98.6 / 99.4 / 99.4%; its lower two blocks 94-98%).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from asr.config import ModelConfig
from asr.model.encoder import MIN_INPUT_FRAMES, ConformerBlock, Conv2dSubsampling, lengths_to_mask
from asr.model.heads import CTCHeads, LanguageIDHead, check_locale_key, pooled_statistics


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared tensor counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class MultilingualCTC(nn.Module):
    """Shared-encoder multilingual CTC model; see the module docstring for the data path."""

    def __init__(self, config: ModelConfig, vocab_sizes: dict[str, int]):
        super().__init__()
        if not vocab_sizes:
            raise ValueError("MultilingualCTC needs at least one language in vocab_sizes")
        self.config = config
        self._languages: list[str] = []
        n_below, n_shared, _ = config.layout
        # The front end goes with the lowest block, so (0, 0, N) shares nothing but the LID head.
        self.shared_frontend = n_below == 0 and n_shared > 0
        self.frontend = self._new_frontend() if self.shared_frontend else None
        self.frontends = nn.ModuleDict()  # per language, when the front end is not shared
        self.below = nn.ModuleDict()  # locale -> ModuleList of layout[0] blocks
        self.shared = nn.ModuleList(self._new_block() for _ in range(n_shared))
        self.above = nn.ModuleDict()  # locale -> ModuleList of layout[2] blocks
        self.heads = CTCHeads(config.d_model, {})
        # frozen copy of the language-independent path that language ID reads (fine-tuned models)
        self.lid_reference: LidReference | None = None
        self.lid = LanguageIDHead(self.lid_statistics, len(vocab_sizes))
        for locale, vocab_size in vocab_sizes.items():
            self._add_language_modules(locale, vocab_size, init_from=None)

    # ---- construction ----------------------------------------------------------------------
    def _new_block(self) -> ConformerBlock:
        c = self.config
        return ConformerBlock(c.d_model, c.n_heads, c.ff_mult, c.conv_kernel, c.dropout)

    def _new_frontend(self) -> Conv2dSubsampling:
        c = self.config
        return Conv2dSubsampling(c.n_mels, c.d_model, c.subsampling_channels)

    def _add_language_modules(self, locale: str, vocab_size: int, init_from: str | None) -> None:
        check_locale_key(locale)
        if locale in self._languages:
            raise ValueError(f"language {locale!r} is already in the model")
        n_below, _, n_above = self.config.layout

        def per_language(modules: nn.ModuleDict, make):
            if init_from is not None and init_from in modules:
                return copy.deepcopy(modules[init_from])
            return make()

        self.heads.add(locale, vocab_size)
        if not self.shared_frontend:
            self.frontends[locale] = per_language(self.frontends, self._new_frontend)
        if n_below:
            self.below[locale] = per_language(
                self.below, lambda: nn.ModuleList(self._new_block() for _ in range(n_below)))
        if n_above:
            self.above[locale] = per_language(
                self.above, lambda: nn.ModuleList(self._new_block() for _ in range(n_above)))
        self._languages.append(locale)

    def add_language(self, locale: str, vocab_size: int, init_from: str | None = None) -> None:
        """Add a language: a fresh CTC head, a new LID output, and its own per-language blocks
        (and front end, when per language), copied from language `init_from` or freshly
        initialised when it is None. Everything else, and every old output, is unchanged."""
        if init_from is not None and init_from not in self._languages:
            raise ValueError(f"init_from={init_from!r} is not in the model ({', '.join(self._languages)})")
        device = next(self.parameters()).device
        self._add_language_modules(locale, vocab_size, init_from)
        self.lid.grow(1)
        self.to(device)

    def keep_lid_reference(self, source: MultilingualCTC | None = None) -> None:
        """Keep the front end and shared blocks as they are now (or `source`'s: the model this
        one was fine-tuned from), frozen, for language ID alone (see the module docstring);
        the LID head grows to read them and is unfitted. Nothing else changes: CTC never reads
        the copy. Once kept, a reference stays (the oldest)."""
        if self.lid_reference is not None:
            return
        if self.lid_needs_locale:
            raise ValueError(f"layout {list(self.config.layout)}: language ID needs a shared "
                             "front end and shared blocks to read")
        source = source or self

        def path_shapes(m: MultilingualCTC) -> list:
            return [{k: v.shape for k, v in part.state_dict().items()}
                    for part in (m.frontend, m.shared)] if m.shared_frontend else []

        if path_shapes(source) != path_shapes(self):
            raise ValueError(f"the LID reference must have this model's front end and shared "
                             f"blocks (d_model {self.config.d_model}, layout "
                             f"{list(self.config.layout)}), got layout {list(source.config.layout)}, "
                             f"d_model {source.config.d_model}")
        device = self.lid.proj.weight.device
        self.lid_reference = LidReference(source.frontend, source.shared).to(device)
        self.lid = LanguageIDHead(self.lid_statistics, len(self._languages)).to(device)

    @property
    def languages(self) -> list[str]:
        """Locales in LID-output order (order of construction, then of add_language)."""
        return list(self._languages)

    @property
    def lid_statistics(self) -> int:
        """Statistics the LID head reads: mean and std of each shared block's output (and of
        each reference block's, when a reference is kept)."""
        per_path = 2 * self.config.d_model * max(1, self.config.layout[1])
        return per_path * (1 if self.lid_reference is None else 2)

    @property
    def lid_needs_locale(self) -> bool:
        """True when the shared output depends on the language (per-language front end or
        below-blocks), so language ID cannot run before the language is known."""
        return not self.shared_frontend  # shared front end <=> layout[0] == 0 < layout[1]

    # ---- computation -----------------------------------------------------------------------
    def _check_locale(self, locale: str) -> None:
        if locale not in self._languages:
            raise KeyError(f"language {locale!r} is not in this model; it has {', '.join(self._languages)}")

    def encode_shared(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                      locale: str | None = None, statistics: bool = False) -> tuple:
        """feats (B, T, n_mels), feat_lens (B,) -> shared output (B, T', D), out_lens (B,)
        [, statistics (B, lid_statistics) for `lid_logits` when `statistics`].

        The shared output is what enters the per-language top blocks, and what the LID head
        pools. `locale` may be None (language unknown, e.g. transcribe --lang auto) only when
        the path up to it is language-independent: layout[0] == 0 and a shared front end.
        """
        if locale is None:
            if self.lid_needs_locale:
                raise ValueError(
                    f"layout {list(self.config.layout)} has per-language input blocks or front ends, "
                    "so the shared output, and language ID, need the language: pass locale=..., "
                    "or use a model with layout [0, K>0, N-K] for automatic language detection")
        else:
            self._check_locale(locale)
        if feats.dim() != 3 or feats.shape[-1] != self.config.n_mels:
            raise ValueError(f"feats must be (batch, frames, {self.config.n_mels}), got {tuple(feats.shape)}")
        if feat_lens.min() < MIN_INPUT_FRAMES or feat_lens.max() > feats.shape[1]:
            raise ValueError(f"feat_lens must lie in [{MIN_INPUT_FRAMES}, {feats.shape[1]}] frames "
                             f"(the shortest input the 4x subsampling accepts; padded length), "
                             f"got min {int(feat_lens.min())}, max {int(feat_lens.max())}")
        frontend = self.frontend if self.shared_frontend else self.frontends[locale]
        x = frontend(feats)  # (B, T', D)
        out_lens = Conv2dSubsampling.subsampled_lengths(feat_lens)  # (B,)
        mask = lengths_to_mask(out_lens, x.shape[1])  # (B, T')
        for block in (self.below[locale] if self.config.layout[0] else ()):
            x = block(x, mask)
        pooled = []
        for block in self.shared:
            x = block(x, mask)
            if statistics:
                pooled.append(pooled_statistics(x, mask))  # (B, 2D), real frames only
        if statistics:
            if self.lid_reference is not None:
                pooled = self.lid_reference.statistics(feats, mask) + pooled
            return x, out_lens, torch.cat(pooled, dim=-1)
        return x, out_lens

    def lid_logits(self, stats: torch.Tensor) -> torch.Tensor:
        """Statistics (B, lid_statistics) from encode_shared -> language logits (B, L), order
        `languages`."""
        return self.lid(stats)

    def train(self, mode: bool = True) -> MultilingualCTC:
        super().train(mode)
        if self.lid_reference is not None:
            self.lid_reference.eval()  # frozen: no dropout, whatever the model does
        return self

    def ctc_log_probs(self, shared: torch.Tensor, out_lens: torch.Tensor, locale: str) -> torch.Tensor:
        """Shared output (B, T', D) -> the locale's top blocks and head -> log-probs (B, T', V) float32."""
        self._check_locale(locale)
        x = shared
        if self.config.layout[2]:
            mask = lengths_to_mask(out_lens, x.shape[1])  # (B, T')
            for block in self.above[locale]:
                x = block(x, mask)
        return self.heads(x, locale)

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor, locale: str) -> dict[str, torch.Tensor]:
        """feats (B, T, n_mels), feat_lens (B,), one locale for the whole batch ->
        {log_probs (B, T', V_locale) float32, out_lens (B,), shared (B, T', D)}. Frames at or
        past out_lens are padding and hold no meaningful values. Language ID is apart:
        `lid_logits` on encode_shared(..., statistics=True) (fitted after training, asr/lid.py)."""
        shared, out_lens = self.encode_shared(feats, feat_lens, locale)
        return {"log_probs": self.ctc_log_probs(shared, out_lens, locale), "out_lens": out_lens,
                "shared": shared}


class LidReference(nn.Module):
    """A frozen copy of a model's front end and shared blocks, read by language ID alone."""

    def __init__(self, frontend: Conv2dSubsampling, shared: nn.ModuleList):
        super().__init__()
        self.frontend = copy.deepcopy(frontend)
        self.shared = copy.deepcopy(shared)
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def statistics(self, feats: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """feats (B, T, n_mels), mask (B, T') of real subsampled frames -> the mean and std
        (B, 2D) of each block's output over real frames, one per block."""
        x = self.frontend(feats)  # (B, T', D)
        out = []
        for block in self.shared:
            x = block(x, mask)
            out.append(pooled_statistics(x, mask))
        return out
