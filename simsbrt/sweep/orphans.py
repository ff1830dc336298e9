"""Worker processes that end when their parent ends, however it ends (SIGKILL included).

Two independent guards, installed by ``stop_with_parent(parent_pid)`` in each worker:
  * Linux: prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills the worker when the thread that
    started it exits (works even while the worker runs compiled code holding the GIL);
  * everywhere: a daemon thread that polls os.getppid() and exits the worker once the parent is
    gone (the worker is re-parented, so its parent pid changes).
A worker of a killed sweep therefore never commits a run later nor blocks on a dead pipe."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
POLL_S = 0.5


def _set_parent_death_signal() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(POLL_S)


def stop_with_parent(parent_pid: int) -> None:
    """Make this process end when the process parent_pid ends (call first thing in a worker)."""
    _set_parent_death_signal()
    if os.getppid() != parent_pid:      # the parent died before the guard was in place
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name="simsbrt-parent-watch", daemon=True).start()
