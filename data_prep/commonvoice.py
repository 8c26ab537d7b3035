"""Reading a Common Voice release exactly as Mozilla distributes it; never writing into it.

    <root>/<locale>/clips/*.mp3
    <root>/<locale>/{train,dev,test,validated,invalidated,other}.tsv   tab-separated, header row
    <root>/<locale>/clip_durations.tsv                                 optional: clip, duration[ms]

Columns are found by name (releases differ in which and how many they have; only client_id,
path and sentence are needed). Every bad row is skipped and counted under a reason from
`DROP_REASONS`; only a file that cannot be read at all (no header, missing columns) is an
error.
"""

from __future__ import annotations

import csv
import os
import posixpath
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from asr.audio import AudioError, audio_info
from asr.fileio import atomic_write, refuse_special
from asr.text import chars_in_script, normalize_text

REQUIRED_COLUMNS = ("client_id", "path", "sentence")
CLIP_DURATIONS_COLUMNS = ("clip", "duration[ms]")
CACHE_COLUMNS = ("clip", "size_bytes", "mtime_ns", "duration_seconds", "error")
SPLITS = ("train", "dev", "test")
TRAIN_SOURCES = ("train", "validated")

DROP_REASONS = {
    "undecodable_bytes": "row is not valid UTF-8",
    "wrong_field_count": "row has a different number of fields than the header",
    "malformed_row": "row cannot be split into fields (stray carriage return)",
    "empty_path": "path column is empty",
    "path_outside_clips": "path is absolute, climbs out of clips/ with '..', or is a link out",
    "empty_speaker": "client_id column is empty",
    "empty_sentence": "sentence is empty or only whitespace",
    "empty_after_normalization": "sentence normalises to nothing",
    "wrong_script": "sentence is not in the locale's script (e.g. Chinese in de, only Latin in zh-CN)",
    "duplicate_path": "clip already listed by an earlier row (or by dev, for test)",
    "missing_clip": "clip listed but not in clips/",
    "unreadable_clip": "clip's audio header cannot be read",
    "zero_duration": "clip holds no audio",
    "dev_test_clip": "training row whose clip is in dev or test",
    "dev_test_speaker": "training row whose speaker is in dev or test",
    "dev_test_sentence": "training row whose normalised sentence is in dev or test",
}


class TsvError(ValueError):
    """A TSV file that cannot be read at all; the message names the file and what is wrong."""


class MissingColumnsError(TsvError):
    def __init__(self, path: Path, missing: list[str], found: list[str]):
        self.path, self.missing, self.found = path, missing, found
        super().__init__(
            f"{path}: header lacks column(s) {', '.join(missing)} (found: {', '.join(found) or 'none'}). "
            "Is this a Common Voice TSV? It needs at least client_id, path and sentence."
        )


class TsvReader:
    """One tab-separated file with a header row, read by column name.

    Lines are read as bytes and decoded one by one, so a single row of bad bytes costs that
    row only. QUOTE_NONE because Common Voice does not quote fields and its sentences contain
    quote characters that a quoting reader would treat as field boundaries.
    """

    def __init__(self, path: str | os.PathLike, columns: Iterable[str] = REQUIRED_COLUMNS):
        self.path = Path(path)
        self.columns = tuple(columns)
        self.dropped: Counter[str] = Counter()
        self.n_rows = 0  # data lines seen, good or bad (blank lines do not count)
        refuse_special(self.path)  # a FIFO named like a TSV would block here forever
        self._file = open(self.path, "rb")  # noqa: SIM115 - closed when rows() finishes
        self._lineno = 0
        self.header = self._read_header()
        missing = [c for c in self.columns if c not in self.header]
        if missing:
            self._file.close()
            raise MissingColumnsError(self.path, missing, self.header)
        self._index = [self.header.index(c) for c in self.columns]

    def _read_header(self) -> list[str]:
        for raw in self._file:
            self._lineno += 1
            line = _strip_eol(raw).removeprefix(b"\xef\xbb\xbf")  # a BOM only ever leads the file
            if not line.strip():
                continue
            try:
                return [name.strip() for name in _split(line.decode("utf-8"))]
            except (UnicodeDecodeError, csv.Error) as e:
                self._file.close()
                raise TsvError(f"{self.path}: header row cannot be read ({e})") from None
        self._file.close()
        raise TsvError(f"{self.path}: empty file, no header row")

    def rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        """Yield (line number, {column: value}) for each well-formed row; count the rest."""
        # reading on from where the header ended: the first data row is never skipped
        with self._file as f:
            for raw in f:
                self._lineno += 1
                line = _strip_eol(raw)
                if not line.strip():
                    continue
                self.n_rows += 1
                try:
                    fields = _split(line.decode("utf-8"))
                except UnicodeDecodeError:
                    self.dropped["undecodable_bytes"] += 1
                    continue
                except csv.Error:
                    self.dropped["malformed_row"] += 1
                    continue
                if len(fields) != len(self.header):
                    self.dropped["wrong_field_count"] += 1
                    continue
                yield self._lineno, {c: fields[i] for c, i in zip(self.columns, self._index, strict=True)}


def _strip_eol(raw: bytes) -> bytes:
    # only the line ending: trailing tabs are empty fields (e.g. `segment`) and must stay
    return raw.rstrip(b"\r\n")


def _split(line: str) -> list[str]:
    return next(csv.reader((line,), delimiter="\t", quoting=csv.QUOTE_NONE))


@dataclass(slots=True)
class Utterance:
    """One usable row of a Common Voice TSV (before durations are known)."""

    clip: str  # path as listed, normalised, relative to clips/
    speaker: str  # client_id
    sentence: str  # raw, as in the TSV
    norm_text: str  # normalize_text(sentence, locale)
    line: int  # line in the TSV, for messages

    @property
    def id(self) -> str:
        return posixpath.splitext(self.clip)[0]


@dataclass
class SplitRows:
    """The usable rows of one TSV plus counts of what was dropped and why."""

    name: str  # split the rows are for: train, dev, test
    source: Path  # the TSV read
    n_rows: int = 0
    utterances: list[Utterance] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    # every clip, speaker and sentence named by a parsable row, kept or dropped: what must
    # stay out of training when this split is held out
    clips: set[str] = field(default_factory=set)
    speakers: set[str] = field(default_factory=set)
    norm_texts: set[str] = field(default_factory=set)


def clip_key(path: str) -> str | None:
    """The clip's path relative to clips/, or None when it would leave that folder."""
    if "\x00" in path or path.startswith(("/", "\\")) or posixpath.isabs(path):
        return None
    key = posixpath.normpath(path.replace("\\", "/"))
    if key == "." or key == ".." or key.startswith("../") or ":" in key.split("/")[0]:
        return None  # the last test refuses Windows drive paths such as C:\x.mp3
    return key


def read_split(
    locale_dir: Path,
    name: str,
    locale: str,
    source: str | None = None,
    exclude_clips: set[str] | None = None,
) -> SplitRows:
    """Read `<locale_dir>/<source or name>.tsv` and keep the rows that pass the text checks.

    `exclude_clips` are clips already claimed by another split (test rows repeating a dev
    clip); they are dropped as duplicates. Clip existence and audio are checked later, in
    bulk, by `clip_durations`.
    """
    path = locale_dir / f"{source or name}.tsv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; a Common Voice release has {name}.tsv per locale")
    reader = TsvReader(path, REQUIRED_COLUMNS)
    out = SplitRows(name=name, source=path)
    seen_ids: set[str] = set()
    taken = exclude_clips or set()
    for lineno, row in reader.rows():
        sentence, speaker = row["sentence"], row["client_id"].strip()
        norm = normalize_text(sentence, locale) if sentence.strip() else ""
        key = clip_key(row["path"].strip())
        if key:
            out.clips.add(key)
        if speaker:
            out.speakers.add(speaker)
        if norm:
            out.norm_texts.add(norm)
        reason = _row_problem(row["path"], key, speaker, sentence, norm, locale)
        if reason is None:
            utt = Utterance(clip=key, speaker=speaker, sentence=sentence, norm_text=norm, line=lineno)
            if utt.id in seen_ids or key in taken:
                reason = "duplicate_path"
            else:
                seen_ids.add(utt.id)
                out.utterances.append(utt)
        if reason:
            out.dropped[reason] += 1
    out.n_rows = reader.n_rows
    out.dropped.update(reader.dropped)
    return out


def _row_problem(path: str, key: str | None, speaker: str, sentence: str, norm: str,
                 locale: str) -> str | None:
    if not path.strip():
        return "empty_path"
    if key is None:
        return "path_outside_clips"
    if not speaker:
        return "empty_speaker"
    if not sentence.strip():
        return "empty_sentence"
    if not norm:
        return "empty_after_normalization"
    if not in_script(norm, locale):
        return "wrong_script"
    return None


def in_script(norm: str, locale: str) -> bool:
    """Whether normalised text is what a reader of `locale` reads as written: only its script's
    letters (and digits), and for zh-CN at least one Chinese character."""
    if not chars_in_script(norm, locale):
        return False
    return locale != "zh-CN" or any(
        chars_in_script(ch, locale, allow_digits=False, allow_latin=False) for ch in norm)


def exclude_held_out(
    pool: list[Utterance], held_out: Iterable[SplitRows]
) -> tuple[list[Utterance], Counter[str]]:
    """Drop every training utterance sharing a clip, speaker or normalised sentence with
    `held_out` (dev and test); returns the rest and the counts, first matching reason only."""
    held = list(held_out)
    clips = set().union(*(s.clips for s in held))
    speakers = set().union(*(s.speakers for s in held))
    texts = set().union(*(s.norm_texts for s in held))
    kept, excluded = [], Counter()
    for utt in pool:
        if utt.clip in clips:
            excluded["dev_test_clip"] += 1
        elif utt.speaker in speakers:
            excluded["dev_test_speaker"] += 1
        elif utt.norm_text in texts:
            excluded["dev_test_sentence"] += 1
        else:
            kept.append(utt)
    return kept, excluded


def clip_durations(
    locale_dir: Path,
    clips: Iterable[str],
    cache_path: Path,
    progress: bool = True,
) -> tuple[dict[str, float], dict[str, str]]:
    """Seconds per usable clip, and a drop reason per clip that cannot be used.

    Sources, cheapest first: the release's own clip_durations.tsv (trusted as is: reading
    a million headers is what it spares us, so corrupt clips it lists go undetected here);
    then `cache_path`, our cache of earlier header reads, valid while a clip's size and
    mtime are unchanged (a regenerated synthetic corpus reuses clip names); then the audio
    header itself. New reads are added to the cache, written atomically. Nothing is written
    under `locale_dir`.
    """
    clips_dir = locale_dir / "clips"
    if not clips_dir.is_dir():
        raise FileNotFoundError(
            f"{clips_dir}: no clips folder; the release root must hold <locale>/clips/*.mp3"
        )
    # one directory listing instead of a stat per clip: releases hold up to a million clips
    with os.scandir(clips_dir) as it:
        entries = [(e.name, e.is_file(), e.is_symlink()) for e in it]
    on_disk = {name for name, is_file, _ in entries if is_file}
    links = {name for name, _, is_link in entries if is_link}
    real_clips_dir = clips_dir.resolve()
    release = read_release_durations(locale_dir / "clip_durations.tsv")
    cache = _read_cache(cache_path)
    seconds: dict[str, float] = {}
    problems: dict[str, str] = {}
    to_read: list[tuple[str, os.stat_result]] = []
    for clip in dict.fromkeys(clips):
        if ("/" in clip or clip in links) and not (
                (clips_dir / clip).resolve().is_relative_to(real_clips_dir)):
            problems[clip] = "path_outside_clips"  # a link (or a linked folder) out of clips/
        elif not (clip in on_disk if "/" not in clip else (clips_dir / clip).is_file()):
            problems[clip] = "missing_clip"
        elif clip in release:
            seconds[clip] = release[clip]
        else:
            st = (clips_dir / clip).stat()
            hit = cache.get(clip)
            if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
                if hit[3]:
                    problems[clip] = hit[3]
                else:
                    seconds[clip] = hit[2]
            else:
                to_read.append((clip, st))
    for clip, st in tqdm(to_read, desc=f"{locale_dir.name}: clip headers", unit="clip",
                         disable=not progress or not to_read):
        try:
            secs, _ = audio_info(clips_dir / clip)
            cache[clip] = (st.st_size, st.st_mtime_ns, secs, "")
            seconds[clip] = secs
        except AudioError:
            cache[clip] = (st.st_size, st.st_mtime_ns, 0.0, "unreadable_clip")
            problems[clip] = "unreadable_clip"
    if to_read:
        _write_cache(cache_path, cache)
    for clip, secs in list(seconds.items()):
        if not secs > 0:
            del seconds[clip]
            problems[clip] = "zero_duration"
    return seconds, problems


def read_release_durations(path: Path) -> dict[str, float]:
    """clip -> seconds from a release's clip_durations.tsv; {} when there is none."""
    if not path.exists():
        return {}
    durations = {}
    reader = TsvReader(path, CLIP_DURATIONS_COLUMNS)
    for _, row in reader.rows():
        try:
            durations[row["clip"].strip()] = float(row["duration[ms]"]) / 1000.0
        except ValueError:
            continue  # a bad entry only means that clip's header gets read instead
    return durations


def _read_cache(path: Path) -> dict[str, tuple[int, int, float, str]]:
    if not path.exists():
        return {}
    try:
        reader = TsvReader(path, CACHE_COLUMNS)
    except TsvError:
        return {}  # an old or foreign cache is simply rebuilt
    cache = {}
    for _, row in reader.rows():
        try:
            cache[row["clip"]] = (int(row["size_bytes"]), int(row["mtime_ns"]),
                                  float(row["duration_seconds"]), row["error"])
        except ValueError:
            continue
    return cache


def _write_cache(path: Path, cache: dict[str, tuple[int, int, float, str]]) -> None:
    with atomic_write(path) as f:
        f.write("\t".join(CACHE_COLUMNS) + "\n")
        for clip in sorted(cache):
            size, mtime_ns, secs, error = cache[clip]
            f.write(f"{clip}\t{size}\t{mtime_ns}\t{secs!r}\t{error}\n")
