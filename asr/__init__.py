"""polyglot-asr: one shared acoustic encoder, one CTC head per language."""

__version__ = "0.1.0"
