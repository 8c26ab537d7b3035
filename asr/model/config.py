"""Model dimensions: the one dataclass a `MultilingualCTC` is built from (with its vocab sizes).

YAML only holds values: the `model:` section of a config maps onto these fields one to one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Conformer-CTC dimensions and the sharing pattern of the block stack.

    `layout = (below, shared, above)` counts Conformer blocks, bottom to top:
      - `below`: per-language input blocks (each language has its own copy),
      - `shared`: blocks every language runs through,
      - `above`: per-language top blocks, just under each language's CTC head.
    So (0, N, 0) is one fully shared encoder, (0, K, N - K) a shared bottom with per-language
    tops, (0, 0, N) separate models, and (a, b, c) a shared middle.

    The 4x subsampling front end goes with the lowest block: shared when the lowest block is
    shared (below == 0 and shared > 0), per language otherwise, so (0, 0, N) really is N
    independent encoders and only the language-ID head joins them.
    """

    n_mels: int = 80  # input feature bins
    d_model: int = 176  # width of every block
    n_heads: int = 4  # attention heads; d_model / n_heads must be even (rotary pairs)
    ff_mult: int = 2  # feed-forward hidden width = ff_mult * d_model
    conv_kernel: int = 15  # depthwise conv kernel, frames after subsampling (odd)
    subsampling_channels: int = 64  # channels of the two stride-2 convs in the front end
    dropout: float = 0.1
    layout: tuple[int, int, int] = (0, 10, 0)  # blocks (per-language below, shared, per-language above)

    def __post_init__(self):
        if isinstance(self.layout, list):  # YAML and JSON give lists
            object.__setattr__(self, "layout", tuple(self.layout))
        for name in ("n_mels", "d_model", "n_heads", "ff_mult", "conv_kernel", "subsampling_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"model.d_model={self.d_model} must split into n_heads={self.n_heads} "
                             "heads of even width (rotary embeddings rotate pairs of channels)")
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"model.conv_kernel must be odd so the conv is centred, got {self.conv_kernel}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if (len(self.layout) != 3 or any(isinstance(n, bool) or not isinstance(n, int) or n < 0
                                         for n in self.layout) or sum(self.layout) == 0):
            raise ValueError(f"model.layout must be three non-negative block counts "
                             f"[below, shared, above] with at least one block, got {list(self.layout)}")

    @property
    def n_blocks(self) -> int:
        """Blocks on one language's path through the encoder."""
        return sum(self.layout)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """Build from plain values (a YAML `model:` section); unknown keys are errors."""
        from asr.config import from_dict

        return from_dict(cls, d, prefix="model.")

    def to_dict(self) -> dict:
        """Plain JSON/YAML values (tuples as lists); `from_dict(to_dict())` round-trips."""
        from asr.config import to_dict

        return to_dict(self)
