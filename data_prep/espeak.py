"""eSpeak NG through ctypes: text -> 16-bit samples at 22050 Hz, reproducible bit for bit.

The shared library and its voice data come from the `espeakng-loader` wheel, so nothing needs
root, a system package or a subprocess.

Why every utterance gets a freshly loaded library: eSpeak NG keeps its synthesiser state in C
globals and function-local statics (the pitch-flutter phase, the echo buffer, the wave
generator's cycle position, the Klatt filters), carries it from one utterance to the next and
seeds its noise generator from the clock. `espeak_Initialize` resets only part of that, so the
same text spoken twice in one process comes out a few samples longer or shorter. Unloading the
library (`dlclose`) and loading it again maps pristine .data/.bss pages, which resets *all* of
it; with `espeak_ng_SetRandSeed` set per utterance the samples then depend only on the
arguments. The reload costs about 0.3 ms, against ~2 ms to speak a sentence.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ESPEAK_SAMPLE_RATE = 22050  # Hz, eSpeak NG's fixed output rate (checked at initialisation)
RATE_RANGE_WPM = (80, 450)  # eSpeak's own limits without its "sonic" speed-up
DEFAULT_RATE_WPM = 175

# enum values from espeak-ng/speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit()
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000  # add the short pause eSpeak puts after a sentence
_POS_CHARACTER = 1
_PHONEMES_IPA = 0x02
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 2, 3, 4, 7
# punctuation and capitals modes stay at their defaults (not read aloud): this build refuses
# to set them in synchronous mode, and a fresh library always starts from the defaults
_BUFFER_MS = 1000  # audio handed to the callback per call; bigger means fewer Python calls

# int callback(short *wav, int numsamples, espeak_EVENT *events); return 0 to go on
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

_LOCK = threading.Lock()  # the library is process-global C state: one utterance at a time


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded or initialised, or refused a voice or an utterance."""


def _paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError:
        raise EspeakError(
            "the espeakng-loader package is not installed; it provides eSpeak NG "
            "(pip install espeakng-loader, or `make install`)"
        ) from None
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


@functools.lru_cache(maxsize=1)
def _language_files() -> dict[str, str]:
    """{"de": "gmw/de", "cmn-latn-pinyin": "sit/cmn-Latn-pinyin", ...} from espeak-ng-data/lang."""
    lang_dir = Path(_paths()[1]) / "lang"
    return {f.name.lower(): f.relative_to(lang_dir).as_posix()
            for f in lang_dir.rglob("*") if f.is_file()}


def _voice_file(voice: str) -> str:
    """"de+f2" -> "gmw/de+f2". Same voice, same samples, but eSpeak opens the file directly
    instead of listing and parsing all ~200 voice files first, which costs ~1.2 ms a clip."""
    language, plus, variant = voice.partition("+")
    return _language_files().get(language.lower(), language) + plus + variant


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Terminate.restype = ctypes.c_int
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
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]


class _Session:
    """One freshly loaded, initialised library; closed (unloaded) when the `with` ends."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        self._chunks: list[bytes] = []
        # keep a reference: ctypes frees the C trampoline when the Python object dies
        self._callback = _SYNTH_CALLBACK(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n_samples, _events) -> int:
        if n_samples > 0 and wav:
            self._chunks.append(ctypes.string_at(wav, 2 * n_samples))
        return 0

    def set_voice(self, voice: str) -> None:
        if self.lib.espeak_SetVoiceByName(_voice_file(voice).encode()) != 0:
            raise EspeakError(f"eSpeak NG has no voice {voice!r} (language codes such as 'de', "
                              "'cmn-latn-pinyin', optionally with a variant: 'de+f2')")

    def set_parameters(self, rate_wpm: int, pitch: int, pitch_range: int) -> None:
        for param, value in ((_PARAM_RATE, rate_wpm), (_PARAM_PITCH, pitch),
                             (_PARAM_RANGE, pitch_range), (_PARAM_VOLUME, 100),
                             (_PARAM_WORDGAP, 0)):
            if self.lib.espeak_SetParameter(param, int(value), 0) != 0:
                raise EspeakError(f"espeak_SetParameter({param}, {value}) failed")

    def synth(self, text: str) -> np.ndarray:
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        err = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0,
                                    _CHARS_UTF8 | _ENDPAUSE, None, None)
        if err != 0:
            raise EspeakError(f"espeak_Synth failed (error {err}) on {text!r}")
        samples = np.frombuffer(b"".join(self._chunks), dtype="<i2")  # (N,) int16
        self._chunks = []
        return samples

    def phonemes(self, text: str, ipa: bool) -> str:
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        parts = []
        # each call returns one clause and advances ptr; a NULL ptr means the text is used up
        while ptr.value:
            out = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8,
                                                 _PHONEMES_IPA if ipa else 0)
            if out:
                parts.append(out.decode("utf-8", "replace").strip())
        return " ".join(p for p in parts if p)


def _dlclose(lib: ctypes.CDLL) -> None:
    import _ctypes  # CPython's own module; unloading is what makes the next load pristine

    close = getattr(_ctypes, "dlclose", None) or _ctypes.FreeLibrary
    close(lib._handle)


_warned_shared = False


def _warn_if_still_loaded(library_path: str) -> None:
    """If something else in the process holds eSpeak NG loaded, our dlclose cannot reset it."""
    global _warned_shared
    if _warned_shared or not hasattr(os, "RTLD_NOLOAD"):
        return
    try:
        lib = ctypes.CDLL(library_path, mode=os.RTLD_NOLOAD | ctypes.RTLD_LOCAL)
    except OSError:
        return  # unloaded, as it should be
    _dlclose(lib)
    _warned_shared = True
    warnings.warn(f"{library_path} stays loaded by another user in this process, so eSpeak's "
                  "state carries over between utterances: synthetic audio will not be "
                  "bit-reproducible", RuntimeWarning, stacklevel=3)


@contextlib.contextmanager
def session() -> Iterator[_Session]:
    """Load eSpeak NG afresh (all C state at its initial values), yield it, then unload it."""
    library_path, data_path = _paths()
    with _LOCK:
        try:
            lib = ctypes.CDLL(library_path, mode=ctypes.RTLD_LOCAL)
        except OSError as e:
            raise EspeakError(f"cannot load eSpeak NG from {library_path} ({e})") from None
        try:
            _declare(lib)
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS,
                                         data_path.encode(), _INITIALIZE_DONT_EXIT)
            if rate != ESPEAK_SAMPLE_RATE:
                raise EspeakError(f"espeak_Initialize with data {data_path} returned {rate}, "
                                  f"expected the sample rate {ESPEAK_SAMPLE_RATE} Hz")
            try:
                yield _Session(lib)
            finally:
                lib.espeak_Terminate()
        finally:
            _dlclose(lib)
            _warn_if_still_loaded(library_path)


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
    minute. The same arguments give the same samples, in any process, after any other call.
    """
    lo, hi = RATE_RANGE_WPM
    if not lo <= rate_wpm <= hi:
        raise ValueError(f"rate_wpm {rate_wpm} outside eSpeak's range {lo}-{hi}")
    for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
        if not 0 <= value <= 100:
            raise ValueError(f"{name} {value} outside eSpeak's 0-100 scale")
    with session() as s:
        s.set_voice(voice)
        s.set_parameters(rate_wpm, pitch, pitch_range)
        s.lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
        return s.synth(text)


def phonemize(texts: list[str], voice: str, ipa: bool = True) -> list[str]:
    """eSpeak's phoneme transcription (IPA, or its ASCII mnemonics) of each text, in one load."""
    with session() as s:
        s.set_voice(voice)
        return [s.phonemes(t, ipa) for t in texts]
