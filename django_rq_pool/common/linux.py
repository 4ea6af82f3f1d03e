"""The two Linux process controls the pool relies on, through prctl(2)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

log = logging.getLogger(__name__)
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _prctl(option: int, value: int) -> bool:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        log.warning("prctl(%d, %d) failed: errno %d", option, value, ctypes.get_errno())
        return False
    return True


def become_subreaper() -> bool:
    """Adopt orphaned descendants, so a killed worker's job child comes back to the master."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


def signal_on_parent_death(signum: int) -> bool:
    """Have the kernel send ``signum`` to this process when its parent (the master) dies."""
    return _prctl(PR_SET_PDEATHSIG, signum)


def child_pids(pid: int) -> list[int]:
    """Direct children of a single-threaded process: reads one /proc file instead of scanning every process."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except FileNotFoundError:  # a kernel built without CONFIG_PROC_CHILDREN
        import psutil

        return [child.pid for child in psutil.Process(pid).children()]
