"""The model: Conformer encoder with shared and per-language blocks, CTC heads, language ID."""

from asr.config import ModelConfig
from asr.model.encoder import (
    MIN_INPUT_FRAMES,
    SUBSAMPLING,
    ConformerBlock,
    Conv2dSubsampling,
    lengths_to_mask,
)
from asr.model.heads import BLANK_ID, CTCHeads, LanguageIDHead, ctc_loss
from asr.model.multilingual import MultilingualCTC, count_parameters

__all__ = [
    "BLANK_ID",
    "MIN_INPUT_FRAMES",
    "SUBSAMPLING",
    "CTCHeads",
    "ConformerBlock",
    "Conv2dSubsampling",
    "LanguageIDHead",
    "ModelConfig",
    "MultilingualCTC",
    "count_parameters",
    "ctc_loss",
    "lengths_to_mask",
]
