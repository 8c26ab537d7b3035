"""Conformer encoder pieces: 4x conv subsampling front end and a standalone Conformer block.

Every module here takes a frame mask (B, T) bool, True = real frame, and guarantees that the
outputs at real frames never depend on what sits in the padding, so an utterance decodes the
same alone or batched with longer ones.

Positional information: rotary embeddings (RoPE) on queries and keys inside attention. They
make attention scores depend only on the distance between frames, with no parameters and no
maximum length, so a model trained on 4 s clips runs on 30 s ones; positions count from each
utterance's first frame, so padding (always at the end) cannot shift them; and they need no
extra attention bias, so attention stays a plain `scaled_dot_product_attention` call. The
depthwise conv in every block adds local, relative order as well.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SUBSAMPLING = 4  # input frames per output frame: Conv2dSubsampling's two stride-2 convs
MIN_INPUT_FRAMES = 7  # shortest input giving one output frame: 7 -> 3 -> 1 (70 ms at a 10 ms hop)
ROTARY_BASE = 10000.0


def lengths_to_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True at real frames."""
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


class Conv2dSubsampling(nn.Module):
    """(B, T, n_mels) -> (B, T', d_model) with T' = ((T - 1) // 2 - 1) // 2, about T / SUBSAMPLING.

    Two unpadded 3x3 stride-2 convolutions, so each output frame only sees input frames it
    covers: real output frames (t < T') never read padding.
    """

    def __init__(self, n_mels: int, d_model: int, channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, stride=2), nn.SiLU(),
            nn.Conv2d(channels, channels, kernel_size=3, stride=2), nn.SiLU(),
        )
        freq = ((n_mels - 1) // 2 - 1) // 2  # mel bins left after the two convs
        self.out = nn.Linear(channels * freq, d_model)

    @staticmethod
    def subsampled_lengths(lens: torch.Tensor) -> torch.Tensor:
        """Input frames -> output frames; >= 1 exactly when lens >= MIN_INPUT_FRAMES."""
        return ((lens - 1) // 2 - 1) // 2

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        # channels_last (NHWC) activations and weights: oneDNN then skips the layout reorders
        # around every call; measured 1.6x faster forward + backward in fp32 on this CPU (the
        # second conv's backward was the most expensive op of a training step). The parameters
        # stay contiguous: only the copies handed to conv2d are reordered.
        x = feats.unsqueeze(1).to(memory_format=torch.channels_last)  # (B, 1, T, F)
        for layer in self.conv:
            if isinstance(layer, nn.Conv2d):
                x = F.conv2d(x, layer.weight.to(memory_format=torch.channels_last),
                             layer.bias, layer.stride)
            else:
                x = layer(x)  # (B, C, T', F')
        b, c, t, f = x.shape
        return self.out(x.permute(0, 2, 1, 3).reshape(b, t, c * f))  # (B, T', D)


def rotary_tables(length: int, dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin tables (length, dim // 2) in float32 for rotating channel pairs."""
    inv_freq = ROTARY_BASE ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (first half, second half) of x (B, H, T, Dh) by position angles."""
    x1, x2 = x.float().chunk(2, dim=-1)  # (B, H, T, Dh/2) each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


class FeedForward(nn.Module):
    """Pre-norm position-wise FFN with SiLU: (B, T, D) -> (B, T, D).

    Dropout on the module's output only, as the Conformer paper places it ("dropout on the
    output of each module, before it is added to the residual"). Each extra dropout costs a
    random draw per element, which on a CPU is one of a training step's largest costs
    (bernoulli_ took 13% of a step with dropout inside the FFN and on attention weights too).
    """

    def __init__(self, d_model: int, ff_mult: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model), nn.Linear(d_model, ff_mult * d_model), nn.SiLU(),
            nn.Linear(ff_mult * d_model, d_model), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention with rotary positions and a key padding mask.

    Dropout on the output only, not on the attention weights: without it SDPA takes its fused
    kernel (measured 1.9x faster forward + backward than the unfused path dropout forces, on a
    CPU) and never materialises the (B, H, T, T) weights.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(
            2, 0, 3, 1, 4)  # 3 x (B, H, T, Dh)
        cos, sin = rotary_tables(t, d // self.n_heads, x.device)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        # Padded keys get no weight; padded queries still see real keys, so no row is all -inf.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        return self.drop(self.proj(y.transpose(1, 2).reshape(b, t, d)))  # (B, T, D)


class ConvModule(nn.Module):
    """Pointwise-GLU, depthwise conv over time, LayerNorm, SiLU, pointwise: (B, T, D) -> (B, T, D).

    LayerNorm rather than BatchNorm after the depthwise conv: it normalises each frame on its
    own, so batch composition and padding never change a frame's output, and train and eval
    behave the same.
    """

    def __init__(self, d_model: int, kernel: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.conv_norm = nn.LayerNorm(d_model)
        self.pointwise_out = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = F.glu(self.pointwise_in(self.norm(x)), dim=-1)  # (B, T, D)
        # Zero the padding so the conv sees exactly the zeros it would pad a lone utterance with.
        y = y.masked_fill(~mask[..., None], 0.0)
        # The depthwise conv over time as a 2-D conv on a (B, D, 1, T) view of the (B, T, D)
        # activations, which is channels_last: no copy, and oneDNN's NHWC depthwise kernel.
        # Measured on one CPU core, the same result as conv1d on the transposed tensor, 17x
        # faster forward and 4x faster forward + backward.
        # In float32 on the CPU: under bf16 autocast with 2 or more threads, oneDNN's bf16
        # depthwise kernel (brdgmm) never finishes compiling for some shapes (e.g. B=1, T=56 or
        # 64 on an AMD EPYC Zen 4: a training run hung mid-epoch); float32 has no such shape
        # (B 1-21 x T 5-400, 1, 2 and 4 threads, measured) and this conv is a sliver of the FLOPs.
        dw = self.depthwise
        cpu = y.device.type == "cpu"
        with torch.autocast(y.device.type, enabled=not cpu and torch.is_autocast_enabled(y.device.type)):
            y = F.conv2d((y.float() if cpu else y).unsqueeze(1).permute(0, 3, 1, 2),  # (B, D, 1, T)
                         dw.weight.unsqueeze(2).to(memory_format=torch.channels_last), dw.bias,
                         padding=(0, dw.padding[0]), groups=dw.groups)  # channels_last
        y = y.permute(0, 2, 3, 1).squeeze(1)  # (B, T, D)
        return self.drop(self.pointwise_out(F.silu(self.conv_norm(y))))


class ConformerBlock(nn.Module):
    """Macaron Conformer block: x + FFN/2, + MHSA, + conv, + FFN/2, then LayerNorm.

    forward(x (B, T, D), mask (B, T) bool True = real frame) -> (B, T, D).
    """

    def __init__(self, d_model: int, n_heads: int, ff_mult: int, conv_kernel: int, dropout: float):
        super().__init__()
        self.ff1 = FeedForward(d_model, ff_mult, dropout)
        self.attn = SelfAttention(d_model, n_heads, dropout)
        self.conv = ConvModule(d_model, conv_kernel, dropout)
        self.ff2 = FeedForward(d_model, ff_mult, dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn(x, mask)
        x = x + self.conv(x, mask)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)
