"""Atomic file writes: a reader sees the old file or the whole new one, never half of one."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp makes 0600 files, finished files get the usual mode


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# the writer's pid in a temporary's name: atomic_write's `.<name>.<pid>.<random>.tmp`,
# data_prep.synth's `.<stem>.<pid>.tmp.mp3`
_TEMPORARY_PID = re.compile(r"^\..+\.(\d+)\.(?:[A-Za-z0-9_]+\.tmp|tmp\.mp3)$")
# What a path may be besides a regular file or a folder. Opening a FIFO blocks until a writer
# comes (forever, in a batch job), a device like /dev/zero reads without end, a socket cannot be
# opened at all: none is data, so none is ever opened.
_SPECIAL_FILES = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class SpecialFileError(ValueError):
    """A path that is a FIFO, device or socket where a file was expected; names the path."""

    def __init__(self, path: str | os.PathLike, kind: str):
        self.path, self.kind = str(path), kind
        self.reason = f"{kind}, not a regular file: refusing to open it"
        super().__init__(f"{self.path}: {self.reason}")


def special_file_kind(path: str | os.PathLike) -> str | None:
    """What `path` is when it is a FIFO, device or socket (after symlinks); None otherwise,
    including when it does not exist. Asked without opening the path, which could block."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((kind for test, kind in _SPECIAL_FILES if test(mode)), None)


def refuse_special(path: str | os.PathLike) -> None:
    """Raise SpecialFileError when `path` is a FIFO, device or socket: the one check made
    before any user's file (audio, manifest, model, LM, text) is opened."""
    kind = special_file_kind(path)
    if kind is not None:
        raise SpecialFileError(path, kind)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """Open a temporary file beside `path`; on success fsync and rename it over `path`.

    A failed write (a full disk, a file-size limit) raises OSError naming `path` and leaves
    the previous `path` as it was. Temporaries a killed writer left for `path` are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    binary = "b" in mode
    # the pid in the name tells a later writer whether this temporary's owner still runs
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:  # write() and fsync() name no file
            hint = (" (disk full or file-size limit reached; the previous file is unchanged)"
                    if e.errno in _DISK_FULL else "")
            raise OSError(e.errno, f"{e.strerror}{hint}", str(path)) from e
        raise


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of `path` whose writer no longer runs (killed mid-write)."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def is_live_temporary(path: str | os.PathLike) -> bool:
    """Whether `path` is a temporary named with its writer's pid, and that writer still runs:
    such a file is never removed, whichever process finds it."""
    m = _TEMPORARY_PID.match(Path(path).name)
    return m is not None and _running(int(m.group(1)))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        pass
    return True


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy `src` to `dst` atomically: `dst` is the old file or a whole copy, never half."""
    refuse_special(src)
    with open(src, "rb") as fin, atomic_write(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def json_safe(obj):
    """`obj` with every NaN or infinite float replaced by None, so the JSON written from it is
    standard JSON (no NaN/Infinity tokens, which most JSON readers refuse)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def to_json_line(row: dict) -> str:
    """One JSONL line of `row` (json_safe), ending in a newline."""
    return json.dumps(json_safe(row), ensure_ascii=False, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj) -> None:
    """`obj` as indented standard JSON (json_safe), atomically."""
    with atomic_write(path) as f:
        json.dump(json_safe(obj), f, ensure_ascii=False, indent=2, allow_nan=False)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write one JSON object per line (json_safe); returns the number of rows."""
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(to_json_line(row))
            n += 1
    return n


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a malformed line is an error naming the file and line."""
    rows = []
    refuse_special(path)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
    return rows


def mark_done(directory: str | os.PathLike, stage: str, info: dict | None = None) -> None:
    """Record that a preparation stage finished (icefall-style `.done` marker)."""
    write_json(Path(directory) / f".{stage}.done", info or {})


def is_done(directory: str | os.PathLike, stage: str) -> bool:
    return (Path(directory) / f".{stage}.done").exists()
