"""The Python API: load a model file once, transcribe files or waveforms.

    from asr import load_model
    m = load_model("exp/run1")                 # a run directory or a model.safetensors
    m.languages                                # ['de', 'fr', 'zh-CN']
    t = m.transcribe("a.mp3", lang="de")       # Transcript(text=..., segments=(Segment(...), ...))
    ts = m.transcribe_batch(["a.mp3", "b.wav"], lang="auto", beam=8)

Loading never unpickles: the file is a safetensors package, checked against its checksum,
and a truncated or altered file raises CheckpointError naming it (asr/package.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from asr.decode import DecodeConfig
from asr.package import load_package_model, resolve_model_path
from asr.transcribe import Failure, Segment, Transcriber, Transcript

__all__ = ["Model", "Segment", "Transcript", "load_model"]


class Model:
    """A multilingual CTC model ready to transcribe; build it with `load_model`."""

    def __init__(self, model, package, path: Path, device: torch.device):
        self._model, self._package = model, package
        self.path, self.device = path, device
        self._transcribers: dict = {}

    @property
    def languages(self) -> list[str]:
        """Locales the model has CTC heads for (Common Voice codes)."""
        return self._model.languages

    @property
    def can_detect_language(self) -> bool:
        """True when lang="auto" works: a language-independent path to the language-ID head,
        whose accuracy on held-out speakers, measured when it was fitted, is good enough."""
        from asr.lid import LanguageIDError

        try:
            self._transcriber(1, None, 1.0, 0.0, "auto").check_language("auto")
        except LanguageIDError:
            return False
        return True

    def _transcriber(self, beam: int, lm: str | dict | None, lm_weight: float,
                     word_score: float, lang: str) -> Transcriber:
        if isinstance(lm, str | os.PathLike):
            if lang == "auto" and len(self.languages) > 1:
                raise ValueError("with lang='auto' pass lm as {locale: path}, one LM per language")
            lm = {lang if lang != "auto" else self.languages[0]: str(lm)}
        lm_paths = {k: str(v) for k, v in (lm or {}).items()}
        key = (beam, tuple(sorted(lm_paths.items())), lm_weight, word_score)
        if key not in self._transcribers:
            cfg = DecodeConfig(beam_size=beam, lm_weight=lm_weight, word_score=word_score)
            for path in lm_paths.values():
                DecodeConfig(lm_path=path)  # a missing file is reported before any audio is read
            self._transcribers[key] = Transcriber(self._model, self._package, cfg, lm_paths,
                                                  device=self.device)
        return self._transcribers[key]

    def transcribe_batch(self, sources: list, lang: str = "auto", beam: int = 1,
                         lm: str | dict | None = None, lm_weight: float = 1.0,
                         word_score: float = 0.0, skip_errors: bool = False) -> list:
        """Transcribe paths or mono float32 16 kHz waveforms (N,) together, in shared batches.

        Returns one Transcript per source, in order. An unreadable file raises AudioError, or,
        with skip_errors=True, gives a Failure(source, reason) in its place.
        """
        from asr.audio import AudioError

        if isinstance(sources, str | os.PathLike | np.ndarray):
            raise TypeError("transcribe_batch takes a list of sources; use transcribe for one")
        tr = self._transcriber(beam, lm, lm_weight, word_score, lang)
        out = []
        for result in tr.run(list(sources), lang=lang):
            if isinstance(result, Failure) and not skip_errors:
                raise AudioError(result.source, result.reason)
            out.append(result)
        return out

    def transcribe(self, source, lang: str = "auto", beam: int = 1, lm: str | dict | None = None,
                   lm_weight: float = 1.0, word_score: float = 0.0) -> Transcript:
        """Transcribe one file path or mono float32 16 kHz waveform (N,).

        lang: a locale of `languages`, or "auto" for the language-ID head. beam > 1 uses
        prefix beam search; lm (an ARPA/KenLM file, see `asr lm`) adds shallow fusion.
        """
        return self.transcribe_batch([source], lang=lang, beam=beam, lm=lm, lm_weight=lm_weight,
                                     word_score=word_score)[0]

    def __repr__(self) -> str:
        return f"Model({str(self.path)!r}, languages={self.languages})"


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> Model:
    """Load a run directory or model file (safetensors; never unpickled) for transcription."""
    file = resolve_model_path(path)
    model, package = load_package_model(file, device=device)
    return Model(model, package, file, torch.device(device))
