"""Manifests: one JSON line per utterance, and the stage that writes them from a release.

    out_dir/<locale>/{train,dev,test}.jsonl   the manifests (ManifestRecord per line)
    out_dir/<locale>/summary.json             kept/dropped counts per split and reason, hours
    out_dir/<locale>/durations.tsv            cache of clip durations read from audio headers
    out_dir/<locale>/.manifests.done          stage marker: the parameters and inputs used

A record's `audio` is the absolute path of the clip (the release's clips folder, resolved,
joined with the TSV's `path`), so a manifest works from any working directory; move the
release and the manifests must be regenerated (the stage marker notices the new root).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypedDict

from asr.fileio import is_done, mark_done, write_json, write_jsonl
from asr.text import normalize_text
from data_prep.commonvoice import (
    DROP_REASONS,
    SPLITS,
    SplitRows,
    clip_durations,
    exclude_held_out,
    read_split,
)
from data_prep.subset import SECONDS_PER_HOUR, select_hours

STAGE = "manifests"
MANIFEST_FORMAT = 2  # bump when records or selection change, so old outputs get redone


class ManifestRecord(TypedDict):
    id: str  # clip file name without extension, unique within a locale
    audio: str  # absolute path of the clip
    duration: float  # seconds
    locale: str  # Common Voice locale code
    speaker: str  # Common Voice client_id
    text: str  # sentence as in the release
    norm_text: str  # normalize_text(text, locale): training target and scoring reference


FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "id": str, "audio": str, "duration": (int, float), "locale": str,
    "speaker": str, "text": str, "norm_text": str,
}


class ManifestError(ValueError):
    """A manifest line that is not a valid record; the message names the file and line."""


def read_manifest(path: str | os.PathLike) -> list[ManifestRecord]:
    """Read and validate a JSONL manifest; any bad line is an error naming file and line."""
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            problem = _record_problem(rec)
            if problem:
                raise ManifestError(f"{path}:{lineno}: {problem}")
            records.append(rec)
    return records


def _record_problem(rec) -> str | None:
    if not isinstance(rec, dict):
        return f"expected a JSON object, got {type(rec).__name__}"
    missing = [k for k in FIELD_TYPES if k not in rec]
    if missing:
        return f"missing field(s) {', '.join(missing)}; a record needs {', '.join(FIELD_TYPES)}"
    for key, types in FIELD_TYPES.items():
        if not isinstance(rec[key], types) or isinstance(rec[key], bool):
            return f"field {key!r} should be {_type_name(types)}, got {rec[key]!r}"
    if not (math.isfinite(rec["duration"]) and rec["duration"] > 0):
        return f"field 'duration' should be a positive number of seconds, got {rec['duration']!r}"
    return None


def _type_name(types) -> str:
    return "a number" if isinstance(types, tuple) else "a string"


def write_manifest(path: str | os.PathLike, records: list[Mapping]) -> int:
    """Write records as JSONL, atomically; returns how many."""
    return write_jsonl(path, records)


def prepare_locale(
    cv_root: Path,
    locale: str,
    out_dir: Path,
    hours: float | None = None,
    seed: int = 0,
    train_source: str = "train",
    progress: bool = True,
) -> dict:
    """The manifests of one locale of a release folder (see `prepare_manifests`); returns its
    summary."""
    normalize_text("", locale)  # an unknown locale fails here, before any reading
    locale_dir = cv_root / locale
    if not locale_dir.is_dir():
        found = sorted(p.name for p in cv_root.iterdir() if p.is_dir()) if cv_root.is_dir() else []
        raise FileNotFoundError(
            f"{locale_dir}: no such locale folder in the release (found: {', '.join(found) or 'nothing'})"
        )
    dest = out_dir / locale
    params = _stage_params(locale_dir, hours, seed, train_source)
    if up_to_date(dest, params):
        return reused_summary(dest)
    (dest / f".{STAGE}.done").unlink(missing_ok=True)  # outputs are in flux from here on

    splits = read_locale_splits([locale_dir], locale, train_source)
    needed = [u.clip for split in splits for u in split.utterances]
    seconds, problems = clip_durations(locale_dir, needed, dest / "durations.tsv", progress)
    clips_dir = (locale_dir / "clips").resolve()
    summary = write_locale(dest, locale, splits, seconds, problems, lambda clip: str(clips_dir / clip),
                           hours=hours, seed=seed, train_source=train_source)[0]
    summary = {"locale": locale, "cv_root": str(cv_root)} | summary
    write_json(dest / "summary.json", summary)
    mark_done(dest, STAGE, params)
    return summary


def read_locale_splits(locale_dirs: list[Path], locale: str, train_source: str
                       ) -> tuple[SplitRows, SplitRows, SplitRows]:
    """(dev, test, train) of a locale, train without any dev or test clip, speaker or sentence.

    Several folders (the archives of a delta release) are read in order and their rows joined:
    a clip a folder before listed already is a duplicate."""
    dev = _read_joined(locale_dirs, "dev", locale)
    test = _read_joined(locale_dirs, "test", locale, exclude_clips=dev.clips)
    train = _read_joined(locale_dirs, "train", locale, source=train_source)
    train.utterances, excluded = exclude_held_out(train.utterances, [dev, test])
    train.dropped.update(excluded)
    return dev, test, train


def _read_joined(locale_dirs: list[Path], name: str, locale: str, source: str | None = None,
                 exclude_clips: set[str] | None = None) -> SplitRows:
    tsv = f"{source or name}.tsv"
    present = [d for d in locale_dirs if (d / tsv).exists()] or locale_dirs[:1]  # none: the error
    joined = None
    for d in present:
        taken = (exclude_clips or set()) | ({u.clip for u in joined.utterances} if joined else set())
        part = read_split(d, name, locale, source=source, exclude_clips=taken)
        if joined is None:
            joined = part
            continue
        joined.n_rows += part.n_rows
        joined.utterances += part.utterances
        joined.dropped.update(part.dropped)
        joined.clips |= part.clips
        joined.speakers |= part.speakers
        joined.norm_texts |= part.norm_texts
    return joined


def write_locale(
    dest: Path,
    locale: str,
    splits: tuple[SplitRows, SplitRows, SplitRows],
    seconds: dict[str, float],
    problems: dict[str, str],
    audio_of: Callable[[str], str],
    hours: float | None,
    seed: int,
    train_source: str,
) -> tuple[dict, dict[str, list[ManifestRecord]]]:
    """Records of usable clips (`audio_of(clip)` their `audio`), the hours subset, the three
    manifests written; returns (summary, records per split)."""
    records = {s.name: _to_records(s, locale, audio_of, seconds, problems) for s in splits}
    pool = records["train"]
    if hours is not None and hours * SECONDS_PER_HOUR > sum(r["duration"] for r in pool):
        warnings.warn(f"{locale}: asked for {hours:g} h of training data but the pool holds only "
                      f"{_hours(pool):.4f} h; taking all of it", stacklevel=4)
    elif hours is not None:
        records["train"] = select_hours(pool, hours, seed)
    for name in SPLITS:
        write_manifest(dest / f"{name}.jsonl", records[name])
    summary = {
        "locale": locale,
        "train_source": train_source,
        "seed": seed,
        "hours_requested": hours,
        "splits": {s.name: _split_summary(s, records[s.name]) for s in splits},
    }
    summary["splits"]["train"].update(
        pool_utterances=len(pool),
        pool_hours=_hours(pool),
        not_selected=len(pool) - len(records["train"]),
    )
    return summary, records


def _to_records(
    split: SplitRows,
    locale: str,
    audio_of: Callable[[str], str],
    seconds: dict[str, float],
    problems: dict[str, str],
) -> list[ManifestRecord]:
    records = []
    for utt in split.utterances:
        if utt.clip in problems:
            split.dropped[problems[utt.clip]] += 1
            continue
        records.append(ManifestRecord(
            id=utt.id,
            audio=audio_of(utt.clip),
            duration=round(seconds[utt.clip], 6),
            locale=locale,
            speaker=utt.speaker,
            text=utt.sentence,
            norm_text=utt.norm_text,
        ))
    return records


def _hours(records: list[Mapping]) -> float:
    return round(sum(r["duration"] for r in records) / SECONDS_PER_HOUR, 6)


def _split_summary(split: SplitRows, records: list[ManifestRecord]) -> dict:
    return {
        "source": split.source.name,
        "rows": split.n_rows,
        "kept": len(records),
        "hours": _hours(records),
        "speakers": len({r["speaker"] for r in records}),
        "dropped": dict(sorted(split.dropped.items())),
    }


def _stage_params(locale_dir: Path, hours: float | None, seed: int, train_source: str) -> dict:
    # the TSVs' size and mtime stand in for their content: a regenerated corpus redoes the stage
    inputs = {}
    for name in ("dev.tsv", "test.tsv", f"{train_source}.tsv", "clip_durations.tsv"):
        path = locale_dir / name
        if path.exists():
            st = path.stat()
            inputs[name] = [st.st_size, st.st_mtime_ns]
    return {
        "format": MANIFEST_FORMAT,
        "locale_dir": str(locale_dir),
        "hours": hours,
        "seed": seed,
        "train_source": train_source,
        "inputs": inputs,
    }


def up_to_date(dest: Path, params: dict) -> bool:
    """Whether `dest` holds the finished outputs of a stage run with `params`."""
    if not is_done(dest, STAGE):
        return False
    outputs = [dest / f"{name}.jsonl" for name in SPLITS] + [dest / "summary.json"]
    if not all(p.exists() for p in outputs):
        return False
    try:
        return json.loads((dest / f".{STAGE}.done").read_text(encoding="utf-8")) == params
    except (OSError, json.JSONDecodeError):
        return False


def reused_summary(dest: Path) -> dict:
    summary = json.loads((dest / "summary.json").read_text(encoding="utf-8"))
    return summary | {"reused": True}


def format_summary(result: dict) -> str:
    """The table a person reads after `prepare_manifests`: per locale and split, rows read,
    utterances kept, hours, speakers, and dropped counts by reason."""
    header = ("locale", "split", "source", "rows", "kept", "hours", "speakers", "dropped")
    lines = []
    for locale, summary in result["locales"].items():
        for name in SPLITS:
            s = summary["splits"][name]
            lines.append((locale, name, s["source"], str(s["rows"]), str(s["kept"]),
                          f"{s['hours']:.4f}", str(s["speakers"]), str(sum(s["dropped"].values()))))
    notes = []
    for locale, summary in result["locales"].items():
        train = summary["splits"]["train"]
        if summary.get("hours_requested") is not None:
            notes.append(
                f"{locale}: training subset {train['hours']:.4f} h of {summary['hours_requested']:g} h "
                f"requested (pool {train['pool_hours']:.4f} h, {train['pool_utterances']} utterances, "
                f"seed {summary['seed']})"
                + ("; the pool is smaller than requested: all of it taken"
                   if summary["hours_requested"] > train["pool_hours"] else "")
            )
        if summary.get("reused"):
            notes.append(f"{locale}: unchanged since the last run, outputs reused")
        elif "archive" in summary:
            notes.append(_archive_note(locale, summary))
        for name in SPLITS:
            dropped = summary["splits"][name]["dropped"]
            if dropped:
                reasons = ", ".join(f"{k}={v}" for k, v in dropped.items())
                notes.append(f"{locale}/{name} dropped: {reasons}")
    reasons_seen = sorted({k for s in result["locales"].values()
                           for split in s["splits"].values() for k in split["dropped"]})
    if reasons_seen:
        width = max(map(len, reasons_seen))
        notes.append("reasons:")
        notes += [f"  {k.ljust(width)}  {DROP_REASONS.get(k, '')}" for k in reasons_seen]
    return "\n".join(_table(header, lines) + ([""] + notes if notes else []))


def _archive_note(locale: str, summary: dict) -> str:
    """One line on the archive pass: what it read, what it skipped and why, the spool's peak."""
    members = dict(summary["archive"]["members"])
    read = (f"{members.pop('clips', 0)} clips ({members.pop('clips_unused', 0)} named by no usable "
            f"row, not decoded), {members.pop('tsvs', 0)} TSVs")
    skipped = ", ".join(f"{k.removeprefix('skipped_')}={v}" for k, v in members.items()
                        if k.startswith("skipped_"))
    return (f"{locale}: read {len(summary['cv_root'])} archive(s) in one pass, "
            f"{summary['archive']['seconds']:.1f} s: {read}"
            + (f"; skipped members: {skipped}" if skipped else "")
            + f"; clip spool peak {summary['archive']['spool_peak_bytes'] / 2**20:.1f} MB")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Aligned text columns: the first three (names) left-aligned, the numbers right-aligned."""
    widths = [max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(header)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    first = fmt(header)
    return [first, "-" * len(first)] + [fmt(row) for row in rows]

