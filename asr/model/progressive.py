"""Progressive neural networks (Rusu et al., 2016): one encoder column per task, earlier
columns frozen, lateral adapters carrying their features into the newest column.

A task is one language or a group of languages trained jointly. Each column is a complete
`MultilingualCTC` (front end, Conformer blocks, CTC heads, LID head) built from the same
`ModelConfig`, so column 0 is a trained joint model, unchanged, and its parameter names just
gain a prefix: `columns.0.shared.3.*`. Adding a task appends a column and freezes every
earlier one (and the adapters that feed earlier columns).

Lateral positions. A column's language-independent path is its front end and its K =
layout[1] shared blocks. Position i < K is the input of shared block i; position K is the
column's shared output, which its top blocks, CTC heads and LID head read. At every position
in `adapter_blocks`, column k adds to its own stream

    a = up( silu( down( concat_j( alpha_j * h_j ) ) ) )     over earlier columns j < k

where h_j (B, T', D) is column j's stream at that position before its own lateral is added
(the front end output for i = 0, block i - 1's output after that): Rusu's h_{i-1}^{(<k)}.
alpha_j is a learned scalar per earlier column, initialised small, so the new column starts
close to a column trained alone; `down` projects the (k * D) inputs to `adapter_dim`, so each
earlier column adds only D * adapter_dim weights per position, a few percent of a column.

A language runs the columns up to its own and no further, so adding and training columns can
never change an old language's output. Language ID needs every column: `encode_shared` with no
locale runs them all, and the model's own LID head (`lid`, over all languages) reads the
statistics of every column's shared blocks side by side; it is fitted after each column's
training (asr/lid.py), since no single column was trained on every language. The columns' own
LID heads are kept unused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asr.config import ModelConfig, ProgressiveConfig, from_dict, to_dict
from asr.model.encoder import MIN_INPUT_FRAMES, Conv2dSubsampling, lengths_to_mask
from asr.model.heads import LanguageIDHead, pooled_statistics
from asr.model.multilingual import MultilingualCTC, count_parameters


class LateralAdapter(nn.Module):
    """Rusu's non-linear lateral: k earlier streams, each (B, T', D) -> (B, T', D).

    Frame-wise, so padding stays where it is and real frames never read it.
    """

    def __init__(self, n_prev: int, d_model: int, adapter_dim: int, scale_init: float):
        super().__init__()
        # One scale per earlier column: the columns' features may sit at different scales.
        self.scale = nn.Parameter(torch.full((n_prev,), float(scale_init)))
        self.down = nn.Linear(n_prev * d_model, adapter_dim)
        self.up = nn.Linear(adapter_dim, d_model)

    def forward(self, prev: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat([self.scale[j] * h for j, h in enumerate(prev)], dim=-1)  # (B, T', k*D)
        return self.up(F.silu(self.down(x)))  # (B, T', D)


class ProgressiveCTC(nn.Module):
    """Columns of `MultilingualCTC`, all but the last frozen; same interface as MultilingualCTC.

    Build with `ProgressiveCTC(trained_model)` (one column) and `add_column(...)`, or use
    `add_column(base, ...)` below, which accepts a joint or a progressive base.
    """

    def __init__(self, first: MultilingualCTC):
        super().__init__()
        c = first.config
        if not first.shared_frontend or c.layout[0]:
            raise ValueError(
                f"progressive columns need a language-independent path for the laterals to read: "
                f"layout [0, K>0, M], got {list(c.layout)}")
        self.config: ModelConfig = c
        if first.lid_reference is not None:  # a fine-tuned model's: frozen as a column, LID reads
            first.lid_reference = None       # the column itself (and its own LID head is unused)
            first.lid = LanguageIDHead(first.lid_statistics, len(first.languages))
        self.columns = nn.ModuleList([first])
        self.laterals = nn.ModuleList([nn.ModuleDict()])  # laterals[k]: position -> adapter into column k
        self.column_configs: list[ProgressiveConfig | None] = [None]
        # over every column's shared output and every language: refitted when a column is added
        self.lid = LanguageIDHead(first.lid_statistics, len(first.languages))

    # ---- construction ----------------------------------------------------------------------
    def add_column(self, vocab_sizes: dict[str, int], settings: ProgressiveConfig) -> None:
        """A new trainable column for the languages in `vocab_sizes`; every existing column and
        adapter is frozen. Copy-init copies the previous column's front end and shared blocks;
        the new column's heads and top blocks are always fresh."""
        clash = sorted(set(vocab_sizes) & set(self.languages))
        if clash or not vocab_sizes:
            raise ValueError(f"a new column needs new languages; {clash or 'none'} given, "
                             f"the model already has {', '.join(self.languages)}")
        n_shared, d = self.config.layout[1], self.config.d_model
        positions = settings.positions(n_shared)
        device = next(self.parameters()).device
        column = MultilingualCTC(self.config, dict(vocab_sizes))
        if settings.init == "copy":
            previous = self.columns[-1]
            column.frontend.load_state_dict(previous.frontend.state_dict())
            column.shared.load_state_dict(previous.shared.state_dict())
        n_prev = len(self.columns)
        adapters = nn.ModuleDict({str(i): LateralAdapter(n_prev, d, settings.adapter_dim,
                                                         settings.lateral_scale_init) for i in positions})
        self.columns.append(column.to(device))
        self.laterals.append(adapters.to(device))
        self.column_configs.append(settings)
        self.lid = LanguageIDHead(len(self.columns) * column.lid_statistics,
                                  len(self.languages)).to(device)
        self._freeze_earlier()

    def _freeze_earlier(self) -> None:
        for k in range(len(self.columns) - 1):
            self.columns[k].requires_grad_(False)
            self.laterals[k].requires_grad_(False)
        self.train(self.training)  # puts the frozen columns in eval mode

    def train(self, mode: bool = True) -> ProgressiveCTC:
        """Frozen columns stay in eval mode (no dropout) whatever `mode` is: their outputs, and
        so the laterals' inputs, are exactly those of inference, in training too."""
        super().train(mode)
        for k in range(len(self.columns) - 1):
            self.columns[k].eval()
            self.laterals[k].eval()
        return self

    def add_language(self, locale: str, vocab_size: int, init_from: str | None = None) -> None:
        """Add a language to the newest (trainable) column; earlier columns are untouched."""
        if locale in self.languages:
            raise ValueError(f"language {locale!r} is already in the model")
        self.columns[-1].add_language(locale, vocab_size, init_from=init_from)
        self.lid.grow(1)

    def spec(self) -> dict:
        """JSON architecture description (languages and settings per column) for the package."""
        return {"columns": [{"languages": col.languages, "progressive": to_dict(s) if s else None}
                            for col, s in zip(self.columns, self.column_configs, strict=True)]}

    @classmethod
    def from_spec(cls, config: ModelConfig, spec: dict, vocab_sizes: dict[str, int]) -> ProgressiveCTC:
        """The architecture of `spec()` with fresh weights; load a state dict into it next."""
        columns = spec["columns"]
        model = cls(MultilingualCTC(config, {loc: vocab_sizes[loc] for loc in columns[0]["languages"]}))
        for col in columns[1:]:
            model.add_column({loc: vocab_sizes[loc] for loc in col["languages"]},
                             from_dict(ProgressiveConfig, col["progressive"], prefix="progressive."))
        return model

    # ---- bookkeeping ---------------------------------------------------------------------
    @property
    def languages(self) -> list[str]:
        """Locales column by column, each column's in its own order."""
        return [loc for col in self.columns for loc in col.languages]

    @property
    def lid_needs_locale(self) -> bool:
        """Never: every column's path is language-independent (layout [0, K, M])."""
        return False

    def column_of(self, locale: str) -> int:
        for k, col in enumerate(self.columns):
            if locale in col.languages:
                return k
        raise KeyError(f"language {locale!r} is not in this model; it has {', '.join(self.languages)}")

    def parameter_report(self) -> list[dict]:
        """Parameter growth, one row per column: its total (column + adapters into it), how many
        are trainable now, how many sit in lateral adapters and in its heads."""
        rows = []
        for k, (col, lat) in enumerate(zip(self.columns, self.laterals, strict=True)):
            rows.append({"column": k, "languages": col.languages,
                         "parameters": count_parameters(col) + count_parameters(lat),
                         "trainable": count_parameters(col, True) + count_parameters(lat, True),
                         "lateral": count_parameters(lat),
                         "heads": count_parameters(col.heads)})
        return rows

    # ---- computation -----------------------------------------------------------------------
    def _run_columns(self, feats: torch.Tensor, feat_lens: torch.Tensor, last: int,
                     statistics: bool = False) -> tuple[list[torch.Tensor], torch.Tensor, list]:
        """Columns 0..last -> their shared outputs, each (B, T', D), out_lens (B,), and (when
        `statistics`) the pooled statistics (B, 2D) of each column's shared blocks' outputs,
        the last one taken after its lateral, as the column's top blocks see it."""
        if feats.dim() != 3 or feats.shape[-1] != self.config.n_mels:
            raise ValueError(f"feats must be (batch, frames, {self.config.n_mels}), got {tuple(feats.shape)}")
        if feat_lens.min() < MIN_INPUT_FRAMES or feat_lens.max() > feats.shape[1]:
            raise ValueError(f"feat_lens must lie in [{MIN_INPUT_FRAMES}, {feats.shape[1]}] frames "
                             f"(the shortest input the 4x subsampling accepts; padded length), "
                             f"got min {int(feat_lens.min())}, max {int(feat_lens.max())}")
        n_shared = self.config.layout[1]
        out_lens = Conv2dSubsampling.subsampled_lengths(feat_lens)  # (B,)
        streams: list[list[torch.Tensor]] = []  # streams[j][i]: column j at position i, pre-lateral
        tops, pooled = [], []
        for k in range(last + 1):
            frozen = k < len(self.columns) - 1
            # Frozen columns build no autograd graph: their outputs are constants to the laterals.
            with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
                col, adapters = self.columns[k], self.laterals[k]
                x = col.frontend(feats)  # (B, T', D)
                mask = lengths_to_mask(out_lens, x.shape[1])  # (B, T')
                own = []
                for i in range(n_shared + 1):
                    own.append(x)
                    if str(i) in adapters:
                        x = x + adapters[str(i)]([s[i] for s in streams])
                    if i < n_shared:
                        x = col.shared[i](x, mask)
                streams.append(own)
                tops.append(x)
                if statistics:
                    pooled += [pooled_statistics(h, mask) for h in [*own[1:n_shared], x]]
        return tops, out_lens, pooled

    def encode_shared(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                      locale: str | None = None, statistics: bool = False) -> tuple:
        """feats (B, T, n_mels), feat_lens (B,) -> shared (B, T', (k+1) * D), out_lens (B,)
        [, statistics (B, S) of every column run, for `lid_logits`, when `statistics`].

        `shared` holds the shared outputs of columns 0..k side by side on the channel axis, k
        the locale's column, or the last column when locale is None (language unknown: what
        `lid_logits` reads); pass it on to `ctc_log_probs` as it is.
        """
        last = len(self.columns) - 1 if locale is None else self.column_of(locale)
        tops, out_lens, pooled = self._run_columns(feats, feat_lens, last, statistics)
        shared = tops[0] if len(tops) == 1 else torch.cat(tops, dim=-1)
        return (shared, out_lens, torch.cat(pooled, dim=-1)) if statistics else (shared, out_lens)

    def _column_slice(self, shared: torch.Tensor, k: int) -> torch.Tensor:
        d = self.config.d_model
        if shared.shape[-1] % d or shared.shape[-1] < (k + 1) * d:
            raise ValueError(f"shared output of width {shared.shape[-1]} does not hold column {k}: "
                             "get it from encode_shared with that column's language")
        return shared[..., k * d:(k + 1) * d].contiguous()  # (B, T', D)

    def ctc_log_probs(self, shared: torch.Tensor, out_lens: torch.Tensor, locale: str) -> torch.Tensor:
        """Shared (B, T', c * D) -> the locale's column's top blocks and head -> (B, T', V) float32."""
        k = self.column_of(locale)
        return self.columns[k].ctc_log_probs(self._column_slice(shared, k), out_lens, locale)

    def lid_logits(self, stats: torch.Tensor) -> torch.Tensor:
        """Statistics of every column (B, S), from encode_shared(locale=None, statistics=True)
        -> language logits (B, L), order `languages`."""
        if stats.shape[-1] != self.lid.proj.in_features:
            raise ValueError(f"language ID reads all {len(self.columns)} columns' statistics "
                             f"({self.lid.proj.in_features}); got {stats.shape[-1]}: use "
                             "encode_shared(locale=None, statistics=True)")
        return self.lid(stats)

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor, locale: str) -> dict[str, torch.Tensor]:
        """As `MultilingualCTC.forward`: {log_probs (B, T', V) float32, out_lens (B,),
        shared (B, T', (k+1) * D)} with k the locale's column."""
        shared, out_lens = self.encode_shared(feats, feat_lens, locale)
        return {"log_probs": self.ctc_log_probs(shared, out_lens, locale), "out_lens": out_lens,
                "shared": shared}


def add_column(base: MultilingualCTC | ProgressiveCTC, vocab_sizes: dict[str, int],
               settings: ProgressiveConfig) -> ProgressiveCTC:
    """`base` (a joint model becomes column 0 as it is) plus a new column for `vocab_sizes`."""
    model = base if isinstance(base, ProgressiveCTC) else ProgressiveCTC(base)
    model.add_column(vocab_sizes, settings)
    return model
