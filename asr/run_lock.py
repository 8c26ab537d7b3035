"""One writer per folder: a lock file holding the owner's pid and host.

    <folder>/.asr.lock   {"pid": 1234, "host": "box", "started": "...", "command": "asr train ..."}

The file is created with O_CREAT|O_EXCL, so of two processes starting together exactly one
gets it; the other is refused with a one-line error naming the folder and the owner (`asr
train`, `asr experiment`, `asr transcribe --out`), or waits for it (`asr prepare`, feature
caches: preparation is idempotent, so the second finds the work done). A lock whose process no
longer runs on this host (killed, or a pid now used by another program) is taken over, with a
message. The lock is released on exit, exceptions included; within one process it is
re-entrant (a Trainer inside an experiment run that holds it already).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_NAME = ".asr.lock"
WAIT_POLL_SECONDS = 0.2
# A lock file that is still empty or unreadable after this long lost its writer between
# create and write (a kill in that instant): it is stale.
UNREADABLE_STALE_SECONDS = 10.0

# lock file -> (owning pid, holders in this process); the pid guards against forked children
_HELD: dict[str, tuple[int, int]] = {}


class FolderBusyError(RuntimeError):
    """Another live process holds the folder's lock; the message names both."""


def _host() -> str:
    return socket.gethostname()


def _process_start(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(owner: dict) -> bool:
    """Whether the process that wrote `owner` still runs (always assumed on another host)."""
    if owner.get("host") != _host():
        return True
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    started = owner.get("process_start")
    return started is None or _process_start(pid) in (None, started)


def _describe(owner: dict) -> str:
    return (f"pid {owner.get('pid')} on {owner.get('host')} (since {owner.get('started')}: "
            f"{owner.get('command')})")


class FolderLock:
    """The lock of `folder`; `acquire()`/`release()`, or use it as a context manager.

    `enabled=False` makes every call a no-op (DDP ranks other than 0, which never write).
    `what` names the folder in messages ("run folder", "data folder", ...). A lock object
    that is garbage-collected releases its hold, like a file object closing: keep a
    reference for as long as the folder is yours.
    """

    def __init__(self, folder: str | os.PathLike, what: str = "folder", enabled: bool = True):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what, self.enabled = what, enabled
        self.held = False

    def _key(self) -> str:
        return str(self.path.resolve())

    def acquire(self, wait: bool = False) -> FolderLock:
        """Take the lock (at once, or with `wait` once its owner ends); FolderBusyError when
        another live process holds it and `wait` is False."""
        if self.held or not self.enabled:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        key = self._key()
        pid, count = _HELD.get(key, (None, 0))
        if pid == os.getpid():
            _HELD[key] = (pid, count + 1)
            self.held = True
            return self
        said = False
        while not self._create():
            owner = self._owner()
            if owner is None:
                continue  # gone (released, or taken over) since the create failed: try again
            if not wait:
                raise FolderBusyError(
                    f"{self.folder}: this {self.what} is in use by {_describe(owner)}; wait for "
                    f"it to finish or choose another folder (if no such process runs, delete "
                    f"{self.path})")
            if not said:
                print(f"{self.folder}: waiting for {_describe(owner)}, which is writing this "
                      f"{self.what}", file=sys.stderr, flush=True)
                said = True
            time.sleep(WAIT_POLL_SECONDS)
        _HELD[key] = (os.getpid(), 1)
        self.held = True
        return self

    def _create(self) -> bool:
        """Create the lock file with our details; False if it exists."""
        pid = os.getpid()
        owner = {"pid": pid, "host": _host(), "process_start": _process_start(pid),
                 "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(owner, f)
            f.write("\n")
        return True

    def _owner(self) -> dict | None:
        """The live owner of an existing lock; None once it is gone or was stale (then removed)."""
        try:
            text = self.path.read_text(encoding="utf-8")
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        try:
            owner = json.loads(text)
            if not isinstance(owner, dict):
                raise ValueError
        except ValueError:
            if age < UNREADABLE_STALE_SECONDS:  # being written this instant: ask again
                time.sleep(WAIT_POLL_SECONDS)
                return self._owner()
            owner = {"pid": None, "host": _host(), "started": "?", "command": "unreadable lock file"}
        if _alive(owner):
            return owner
        self._take_over(text, owner)
        return None

    def _take_over(self, text: str, owner: dict) -> None:
        """Remove a stale lock; under a lock on the folder itself, so that of two processes
        recovering it at once the second cannot remove the first one's new lock."""
        with _folder_guard(self.folder):
            try:
                if self.path.read_text(encoding="utf-8") != text:
                    return  # someone else took it over already
                self.path.unlink()
            except FileNotFoundError:
                return
        print(f"{self.folder}: took over the lock of {_describe(owner)}, which no longer runs",
              file=sys.stderr, flush=True)

    def release(self) -> None:
        """Give the lock up (the file goes when this process's last holder releases it)."""
        if not self.held:
            return
        self.held = False
        key = self._key()
        pid, count = _HELD.get(key, (None, 0))
        if pid != os.getpid():
            return
        if count > 1:
            _HELD[key] = (pid, count - 1)
            return
        del _HELD[key]
        _remove_own(Path(key))

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def _remove_own(path: Path) -> None:
    """Delete a lock file if it is still this process's (never a successor's)."""
    with contextlib.suppress(OSError, ValueError):
        owner = json.loads(path.read_text(encoding="utf-8"))
        if owner.get("pid") == os.getpid() and owner.get("host") == _host():
            path.unlink()


@contextlib.contextmanager
def _folder_guard(folder: Path):
    """An advisory lock on the folder itself (flock), where the platform has one."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the takeover is unguarded
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


@atexit.register
def _release_all() -> None:
    """A process that exits (an uncaught exception, sys.exit) leaves no lock of its own."""
    for key, (pid, _) in list(_HELD.items()):
        if pid == os.getpid():
            _remove_own(Path(key))
    _HELD.clear()
