"""Worker processes that never outlive their parent.

A pool worker whose parent was killed (kill -9, the OOM killer) would otherwise finish its task
and wait forever for the next; worse, it may go on writing files that a rerun of the parent
is writing too. `watch_parent` in a pool's initializer makes it exit instead.
"""

from __future__ import annotations

import os
import threading
import time


def watch_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """Start a daemon thread that ends this process once `parent_pid` is no longer its parent."""
    threading.Thread(target=exit_when_orphaned, args=(parent_pid, poll_seconds), daemon=True).start()


def exit_when_orphaned(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """Block while `parent_pid` is this process's parent, then exit at once (status 1)."""
    while os.getppid() == parent_pid:
        time.sleep(poll_seconds)
    os._exit(1)
