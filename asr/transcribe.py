"""Transcribing recordings: files or waveforms -> segments -> batched model -> text with times.

    sources ─► segment_file (streamed, cut at pauses, <= 20 s) ─► pool of segments
            ─► batches by padded frames ─► log-mel, CMVN ─► encode_shared ─► [LID] ─► CTC head
            ─► greedy / beam (+LM) ─► Segment(start, end, text) ─► Transcript per source

Segments of many short files share batches; a long file never holds more than one segment
and one batch in memory. Times come from the CTC alignment: the output frame where each
token starts, 40 ms per frame (4x subsampling of 10 ms frames).

Language: a fixed locale, or "auto", where the language-ID head judges every segment; a file
is decoded in the language of the evidence seen so far (mean LID probability over its
segments), so one odd segment cannot switch a long recording's language.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from asr.audio import SAMPLE_RATE, AudioError, is_audio_file
from asr.config import check_input_bins
from asr.data import batch_features
from asr.decode import DecodeConfig, Decoder, Hypothesis
from asr.features import log_mel
from asr.fileio import json_safe
from asr.languages import language
from asr.lid import LanguageIDError, check_auto, record_of
from asr.model.encoder import SUBSAMPLING
from asr.segment import MAX_SEGMENT_SECONDS, AudioSegment, segment_file, segment_waveform

GAP_SECONDS = 0.6  # a silence this long between words starts a new output segment
FORMATS = ("txt", "json", "srt", "vtt")


@dataclass(frozen=True)
class Segment:
    """A stretch of recognised speech; times in seconds from the start of the recording."""

    start_seconds: float
    end_seconds: float
    text: str
    language: str


@dataclass(frozen=True)
class Transcript:
    """The recognition of one recording (a file, or an in-memory waveform)."""

    source: str
    text: str
    segments: tuple[Segment, ...]
    language: str
    language_probability: float | None  # None when the language was given, not detected
    duration_seconds: float

    def to_dict(self) -> dict:
        return asdict(self) | {"segments": [asdict(s) for s in self.segments]}


@dataclass(frozen=True)
class Failure:
    """A source that could not be transcribed, and why."""

    source: str
    reason: str


@dataclass
class _Pending:
    """Per-source bookkeeping while its segments are in flight."""

    source: str
    language: str | None = None  # the requested locale; None for auto
    segments: list = field(default_factory=list)  # (start, Segment list) per audio segment
    lid_sum: np.ndarray | None = None  # (L,) duration-weighted LID probabilities
    seconds: float = 0.0
    open_segments: int = 0
    done: bool = False
    error: str | None = None


def collect_audio_files(inputs: Iterable[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """Files and folders -> [(file, path relative to its input)]; folders walked recursively
    for the audio extensions of asr.audio_io.AUDIO_EXTENSIONS. A named file is kept whatever
    its extension; a named folder without audio files is kept too, so it is reported (say, a
    folder named x.wav)."""
    out = []
    for item in inputs:
        p = Path(item)
        found = [(f, f.relative_to(p)) for f in sorted(p.rglob("*"))
                 if f.is_file() and is_audio_file(f)] if p.is_dir() else []
        out += found or [(p, Path(p.name))]
    return out


class Transcriber:
    """A loaded model plus decoders; `run` transcribes many sources in shared batches."""

    def __init__(self, model, package, decode: DecodeConfig | None = None,
                 lm_paths: dict[str, str] | None = None, device: str | torch.device = "cpu",
                 batch_seconds: float = 120.0, max_segment_seconds: float = MAX_SEGMENT_SECONDS):
        self.model, self.package = model, package
        self.device = torch.device(device)
        self.features = package.config.features
        self.stats = package.stats
        # Features are computed here from the package's own settings: what can still disagree
        # is the number of mel bins between those settings, the model and the statistics.
        check_input_bins(self.features, model.config.n_mels, len(self.stats.mean),
                         where=str(package.path or "the model package"))
        self.decoder = Decoder(package.tokenizers, decode or DecodeConfig(), lm_paths)
        self.batch_samples = int(batch_seconds * SAMPLE_RATE)
        self.max_segment_seconds = max_segment_seconds
        self.frame_seconds = SUBSAMPLING * self.features.hop_ms / 1000  # 0.04 s per output frame

    @property
    def languages(self) -> list[str]:
        return self.model.languages

    def check_language(self, lang: str) -> None:
        """A known language, or "auto" for a model whose language ID can be trusted
        (LanguageIDError otherwise: the measured accuracy, or why there is none)."""
        if lang == "auto":
            if self.model.lid_needs_locale:
                raise LanguageIDError(
                    f"this model (layout {list(self.model.config.layout)}) has per-language input "
                    "blocks, so it cannot identify the language before knowing it: pass --lang "
                    f"with one of {', '.join(self.languages)}")
            check_auto(self.languages, record_of(self.package.meta),
                       str(self.package.path or "the model"))
        elif lang not in self.languages:
            raise ValueError(f"language {lang!r} is not in this model; it has "
                             f"{', '.join(self.languages)} (or use auto)")

    # ---- the pipeline ---------------------------------------------------------------------
    def _segments(self, sources: list) -> Iterator[tuple[int, AudioSegment | AudioError | None]]:
        """(source index, segment) per segment, (index, None) at each source's end, errors inline."""
        for i, src in enumerate(sources):
            try:
                if isinstance(src, np.ndarray):
                    it = segment_waveform(src, self.max_segment_seconds)
                else:
                    it = segment_file(src, self.max_segment_seconds)
                for seg in it:
                    yield i, seg
            except AudioError as e:
                yield i, e
                continue
            yield i, None

    def run(self, sources: list, lang: str = "auto", progress=None) -> Iterator[Transcript | Failure]:
        """Transcribe `sources` (paths, or mono float32 16 kHz arrays) in input order.

        `progress`, if given, is called with the seconds of audio decoded after each batch.
        """
        self.check_language(lang)
        fixed = None if lang == "auto" else lang
        state = [_Pending(f"<waveform {i}>" if isinstance(src, np.ndarray) else str(src), fixed)
                 for i, src in enumerate(sources)]
        pool: list[tuple[int, AudioSegment]] = []
        pool_samples, emitted = 0, 0
        for i, item in self._segments(sources):
            if isinstance(item, AudioError):
                state[i].error, state[i].done = item.reason, True
            elif item is None:
                state[i].done = True
            else:
                state[i].open_segments += 1
                pool.append((i, item))
                pool_samples += len(item.samples)
            # Two batches' worth: enough to sort short files by length, small enough that a
            # long file's memory stays flat (a 20-minute file never sits in memory).
            if pool_samples >= 2 * self.batch_samples:
                self._run_pool(pool, state, lang, progress)
                pool, pool_samples = [], 0
            while emitted < len(state) and state[emitted].done and not state[emitted].open_segments:
                yield self._finish(state[emitted])
                state[emitted] = None  # free its segments
                emitted += 1
        self._run_pool(pool, state, lang, progress)
        while emitted < len(state):
            yield self._finish(state[emitted])
            emitted += 1

    def _run_pool(self, pool, state, lang, progress) -> None:
        # Sort by length so each batch pads little; _finish puts a file's segments back in time order.
        pool = sorted(pool, key=lambda x: len(x[1].samples))
        batch: list = []
        for item in pool:
            longest = len(item[1].samples)  # ascending order: the newcomer is the longest
            if batch and longest * (len(batch) + 1) > self.batch_samples:
                self._run_batch(batch, state, lang, progress)
                batch = []
            batch.append(item)
        if batch:
            self._run_batch(batch, state, lang, progress)

    @torch.inference_mode()
    def _run_batch(self, batch, state, lang, progress) -> None:
        feats, lens = self._features([seg for _, seg in batch])
        lid = None
        if lang == "auto":  # the language unknown: every column of a progressive model
            shared, out_lens, stats = self.model.encode_shared(feats, lens, statistics=True)
            lid = torch.softmax(self.model.lid_logits(stats).float(), dim=-1).cpu().numpy()  # (B, L)
        else:
            shared, out_lens = self.model.encode_shared(feats, lens, locale=lang)  # (B, T', D), (B,)
        rows_by_locale: dict[str, list[int]] = {}
        for b, (i, seg) in enumerate(batch):
            st = state[i]
            if lid is not None:
                w = seg.duration_seconds
                st.lid_sum = lid[b] * w if st.lid_sum is None else st.lid_sum + lid[b] * w
                loc = self.languages[int(np.argmax(st.lid_sum))]
            else:
                loc = lang
            rows_by_locale.setdefault(loc, []).append(b)
        for loc, rows in rows_by_locale.items():
            idx = torch.tensor(rows, device=shared.device)
            lp = self.model.ctc_log_probs(shared[idx], out_lens[idx], loc)  # (b, T', V)
            hyps = self.decoder(lp, out_lens[idx], loc)
            for b, hyp in zip(rows, hyps, strict=True):
                i, seg = batch[b]
                st = state[i]
                st.segments.append((seg.start_seconds, self._to_segments(hyp, seg, loc)))
                st.seconds += seg.duration_seconds
                st.open_segments -= 1
        if progress is not None:
            progress(sum(seg.duration_seconds for _, seg in batch))

    def _features(self, segments: list[AudioSegment]) -> tuple[torch.Tensor, torch.Tensor]:
        """Segments -> normalised padded log-mel (B, T, F) and lengths (B,) (see batch_features)."""
        feats, lens = batch_features([log_mel(seg.samples, self.features) for seg in segments],
                                     self.stats)  # (B, T, F), (B,)
        return feats.to(self.device), lens.to(self.device)

    def _to_segments(self, hyp: Hypothesis, seg: AudioSegment, locale: str) -> list[Segment]:
        """One decoded audio segment -> output segments, split at long silences between words."""
        tok = self.package.tokenizers[locale]
        if not hyp.ids:
            return []
        gap = int(round(GAP_SECONDS / self.frame_seconds))
        # Without word breaks (zh-CN) every unit may start a segment; else only word-initial ones.
        spaced = bool(language(locale).word_separator)
        groups, current = [], [0]
        for k in range(1, len(hyp.ids)):
            starts_word = not spaced or tok.id_to_piece(hyp.ids[k]).startswith(("▁", " "))
            if hyp.frames[k] - hyp.frames[k - 1] > gap and starts_word:
                groups.append(current)
                current = []
            current.append(k)
        groups.append(current)
        out = []
        for g in groups:
            text = tok.decode([hyp.ids[k] for k in g])
            if not text:
                continue
            start = seg.start_seconds + hyp.frames[g[0]] * self.frame_seconds
            end = seg.start_seconds + (hyp.frames[g[-1]] + 1) * self.frame_seconds
            end = min(max(end, start), seg.end_seconds)
            out.append(Segment(round(min(start, end), 3), round(end, 3), text, locale))
        return out

    def _finish(self, st: _Pending) -> Transcript | Failure:
        if st.error is not None:
            return Failure(st.source, st.error)
        segments = tuple(s for _, group in sorted(st.segments, key=lambda x: x[0]) for s in group)
        # Segments join with their languages' separator; a mix of spaced and unspaced gets " ".
        seps = {language(s.language).word_separator for s in segments}
        sep = seps.pop() if len(seps) == 1 else " "
        if st.lid_sum is not None:
            probs = st.lid_sum / max(st.seconds, 1e-9)
            k = int(np.argmax(probs))
            detected, prob = self.languages[k], float(probs[k])
        else:
            detected, prob = st.language, None
        return Transcript(st.source, sep.join(s.text for s in segments), segments,
                          detected, prob, round(st.seconds, 3))


# ---- output formats -------------------------------------------------------------------------
def _clock(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def format_transcript(t: Transcript, fmt: str) -> str:
    """A transcript as txt (the text), json, srt or vtt (one cue per segment)."""
    if fmt == "txt":
        return t.text + "\n"
    if fmt == "json":
        return json.dumps(json_safe(t.to_dict()), ensure_ascii=False, indent=2) + "\n"
    if fmt == "srt":
        return "".join(f"{k}\n{_clock(s.start_seconds, ',')} --> {_clock(s.end_seconds, ',')}\n{s.text}\n\n"
                       for k, s in enumerate(t.segments, 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(
            f"{_clock(s.start_seconds, '.')} --> {_clock(s.end_seconds, '.')}\n{s.text}\n\n"
            for s in t.segments)
    raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
