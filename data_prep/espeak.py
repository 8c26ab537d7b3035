"""eSpeak NG through ctypes: text -> 16-bit samples at 22050 Hz, reproducible bit for bit.

The shared library and its voice data come from the `espeakng-loader` wheel, so nothing needs
root, a system package or a subprocess. eSpeak is a C library with process-wide state (one
current voice, one set of parameters, one output callback), so this module keeps exactly one
engine per process; worker processes each initialise their own.

Reproducibility: eSpeak seeds the random generator behind its breath noise and jitter from the
clock and carries voice and parameter changes from one utterance to the next. `synthesize()`
therefore sets the seed (`espeak_ng_SetRandSeed`), the voice and every parameter it touches
before each utterance, so a clip depends only on its arguments, not on what was spoken before.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading

import numpy as np

ESPEAK_SAMPLE_RATE = 22050  # Hz, eSpeak NG's fixed output rate (checked at initialisation)

# enum values from espeak-ng/speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000  # flag: add the short pause eSpeak puts after a sentence
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 2, 3, 4, 7
# punctuation and capitals modes are left at their defaults (not read aloud): this build
# rejects setting them in synchronous mode, and they never change here
_PHONEMES_IPA = 0x02
_BUFFER_MS = 1000  # samples handed to the callback per call; bigger means fewer Python calls

# int callback(short *wav, int numsamples, espeak_EVENT *events); return 0 to go on
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

RATE_RANGE_WPM = (80, 450)  # eSpeak's own limits without its "sonic" speed-up
DEFAULT_RATE_WPM = 175


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded, initialised, or refused a voice or an utterance."""


class _Engine:
    """The process's one eSpeak NG instance, in synchronous mode with a collecting callback."""

    def __init__(self, library_path: str, data_path: str):
        try:
            self.lib = ctypes.CDLL(library_path)
        except OSError as e:
            raise EspeakError(
                f"cannot load eSpeak NG from {library_path} ({e}); "
                "is the espeakng-loader package installed in this environment?"
            ) from None
        lib = self.lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int
        ]

        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate != ESPEAK_SAMPLE_RATE:
            raise EspeakError(
                f"espeak_Initialize with data {data_path} returned {rate}, expected sample rate "
                f"{ESPEAK_SAMPLE_RATE} Hz"
            )
        self._chunks: list[bytes] = []
        # keep a reference: ctypes frees the trampoline when the Python object dies
        self._callback = _SYNTH_CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()  # the C state is global; one utterance at a time

    def _collect(self, wav, n_samples, _events) -> int:
        if n_samples > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, 2 * n_samples))
        return 0

    def set_voice(self, voice: str) -> None:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"eSpeak NG has no voice {voice!r}")

    def set_parameters(self, rate_wpm: int, pitch: int, pitch_range: int) -> None:
        for param, value in (
            (_PARAM_RATE, rate_wpm), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range),
            (_PARAM_VOLUME, 100), (_PARAM_WORDGAP, 0),
        ):
            if self.lib.espeak_SetParameter(param, int(value), 0) != 0:
                raise EspeakError(f"espeak_SetParameter({param}, {value}) failed")

    def synth(self, text: str) -> np.ndarray:
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        err = self.lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE, None, None
        )
        if err != 0:
            raise EspeakError(f"espeak_Synth failed (error {err}) on {text!r}")
        samples = np.frombuffer(b"".join(self._chunks), dtype="<i2")  # (N,) int16
        self._chunks = []
        return samples

    def phonemes(self, text: str, ipa: bool) -> str:
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        parts = []
        # each call returns one clause and advances ptr; NULL ptr means the text is used up
        while ptr.value:
            out = self.lib.espeak_TextToPhonemes(
                ctypes.byref(ptr), _CHARS_UTF8, _PHONEMES_IPA if ipa else 0
            )
            if out:
                parts.append(out.decode("utf-8", "replace"))
        return " ".join(parts)


@functools.lru_cache(maxsize=1)
def _engine_for_pid(pid: int) -> _Engine:
    # keyed by pid so a forked child never reuses its parent's half-shared C state
    import espeakng_loader

    return _Engine(espeakng_loader.get_library_path(), espeakng_loader.get_data_path())


def engine() -> _Engine:
    return _engine_for_pid(os.getpid())


def synthesize(
    text: str,
    voice: str,
    rate_wpm: int = DEFAULT_RATE_WPM,
    pitch: int = 50,
    pitch_range: int = 50,
    seed: int = 0,
) -> np.ndarray:
    """Speak `text` with `voice` (e.g. "de+m3") -> int16 samples (N,) at ESPEAK_SAMPLE_RATE.

    pitch and pitch_range are eSpeak's 0-100 scales (50 = the voice's own); rate is words per
    minute. The same arguments give the same samples, whatever was synthesised before.
    """
    lo, hi = RATE_RANGE_WPM
    if not lo <= rate_wpm <= hi:
        raise ValueError(f"rate_wpm {rate_wpm} outside eSpeak's range {lo}-{hi}")
    eng = engine()
    with eng.lock:
        eng.set_voice(voice)
        eng.set_parameters(rate_wpm, pitch, pitch_range)
        eng.lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
        return eng.synth(text)


def phonemize(text: str, voice: str, ipa: bool = True) -> str:
    """eSpeak's phoneme transcription of `text` (IPA, or its ASCII mnemonics)."""
    eng = engine()
    with eng.lock:
        eng.set_voice(voice)
        return eng.phonemes(text, ipa)
