"""polyglot-asr: one shared acoustic encoder, one CTC head per language."""

__version__ = "0.1.0"


def load_model(path, device="cpu"):
    """Load a run directory or model file for transcription; see asr.api.load_model.

    A function rather than a re-export so `import asr` stays light: torch loads on first use.
    """
    from asr.api import load_model as _load_model

    return _load_model(path, device=device)
