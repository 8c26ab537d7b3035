"""Template grammars that write Common Voice-like sentences, one module per language."""
