"""Atomic file writes: a reader sees the old file or the whole new one, never half of one."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp makes 0600 files, finished files get the usual mode


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
# the writer's pid in a temporary's name: atomic_write's `.<name>.<pid>.<random>.tmp`,
# data_prep.synth's `.<stem>.<pid>.tmp.mp3`
_TEMPORARY_PID = re.compile(r"^\..+\.(\d+)\.(?:[A-Za-z0-9_]+\.tmp|tmp\.mp3)$")


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
    with open(src, "rb") as fin, atomic_write(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write one JSON object per line; returns the number of rows."""
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a malformed line is an error naming the file and line."""
    rows = []
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
