"""Where `asr transcribe --out DIR` writes each transcript, planned before anything is decoded.

The rules (also in `asr transcribe --help` and the README), deterministic from the command line
and the files found:

    one input            DIR/<path relative to it>, the extension replaced by the format
                         (in/a/b.wav -> DIR/a/b.txt; a named file -> DIR/<its name>)
    several inputs       a folder's files under DIR/<folder name>/ (d1/x.wav -> DIR/d1/x.txt),
                         a named file directly in DIR
    a shared name        files that would get the same output name (clip.mp3 and clip.wav in
                         one folder; names compared as a case-insensitive file system would)
                         all keep their extension: clip.mp3.txt, clip.wav.txt
    refused up front     a clash that remains (the same relative name from two inputs), an
                         output that is one of the inputs (the same file, through any link),
                         a folder in the way, and an existing file unless --overwrite

A refusal is one line naming both files, raised before any model is loaded.
"""

from __future__ import annotations

import os
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from asr.transcribe import collect_audio_files


class OutputConflict(ValueError):
    """Two sources would share an output, or an output would replace an input or a file not
    written by this run."""


def _fold(path: Path) -> str:
    """A name as case-insensitive, normalising file systems (macOS, Windows) compare it."""
    return unicodedata.normalize("NFC", str(path)).casefold()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()  # follows links: a link to an input is that input
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _input_prefix(item: str | os.PathLike) -> Path:
    """The folder name an input's outputs go under when several inputs are given."""
    return Path(Path(os.path.abspath(item)).name or "root")


def plan_outputs(inputs: Sequence[str | os.PathLike], out: Path, fmt: str,
                 overwrite: bool = False) -> list[tuple[Path, Path]]:
    """[(audio file, output file)] for every audio file of `inputs`, in input order; raises
    OutputConflict (a one-line message) for any output that cannot be written safely."""
    sources: list[tuple[Path, Path]] = []  # (file, output path relative to `out`, no suffix yet)
    for item in inputs:
        prefix = _input_prefix(item) if len(inputs) > 1 and Path(item).is_dir() else Path()
        sources += [(f, prefix / rel) for f, rel in collect_audio_files([item])]
    keep_ext = [False] * len(sources)
    while True:  # a name shared by several sources: each of them keeps its extension
        names = [rel.with_name(rel.name if keep else rel.stem) for (_, rel), keep
                 in zip(sources, keep_ext, strict=True)]
        groups: dict[str, list[int]] = defaultdict(list)
        for k, name in enumerate(names):
            groups[_fold(name)].append(k)
        widen = [k for g in groups.values() if len(g) > 1 for k in g if not keep_ext[k]]
        if not widen:
            break
        for k in widen:
            keep_ext[k] = True
    for group in groups.values():
        if len(group) > 1:
            a, b = (sources[k][0] for k in group[:2])
            raise OutputConflict(f"{a} and {b} would both be transcribed to "
                                 f"{out / names[group[0]]}.{fmt}; transcribe them into separate "
                                 "--out folders")
    plan = [(f, out / f"{name}.{fmt}") for (f, _), name in zip(sources, names, strict=True)]
    check_targets(plan, overwrite)
    return plan


def check_targets(plan: list[tuple[Path, Path]], overwrite: bool) -> None:
    """Refuse outputs that are inputs, sit where a folder or file is in the way, or exist
    (unless `overwrite`)."""
    inputs = {ident: f for f, _ in plan if (ident := _identity(f)) is not None}
    for f, target in plan:
        for parent in target.parents:
            if parent.exists() and not parent.is_dir():
                raise OutputConflict(f"{target}: cannot write the transcript of {f}: {parent} "
                                     "is a file, not a folder")
            if parent.exists():
                break
        if not (target.exists() or target.is_symlink()):
            continue
        if (ident := _identity(target)) in inputs:
            raise OutputConflict(f"{target}: the transcript of {f} would overwrite the input "
                                 f"{inputs[ident]}; choose another --out or --format")
        if target.is_dir():
            raise OutputConflict(f"{target}: the transcript of {f} would replace a folder")
        if not overwrite:
            raise OutputConflict(f"{target} exists (the transcript of {f} would replace it); "
                                 "pass --overwrite to replace existing transcripts, or choose "
                                 "another --out")
