"""The pool's memory, as the budget (``--max-memory``) counts it: the total PSS of its processes.

PSS splits each shared page among the processes that map it, so the sum over the master, its
workers, their job children and the pool's helpers is what the pool really occupies, however
much of Django's image the workers share copy-on-write. Read from ``/proc/PID/smaps_rollup``
(one small file per process), about once a second while a budget is set.
"""

from __future__ import annotations

import psutil


def rollup(pid: int) -> dict[str, int]:
    """The kB figures of ``/proc/PID/smaps_rollup`` in bytes ({} when the process is gone)."""
    figures: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                parts = rest.split()
                if len(parts) == 2 and parts[1] == "kB":
                    figures[name] = int(parts[0]) * 1024
    except (OSError, ValueError):
        return {}
    return figures


def pool_pss(master_pid: int) -> int | None:
    """Total PSS of the master and every descendant; None when the master cannot be read."""
    try:
        pids = [master_pid, *(child.pid for child in psutil.Process(master_pid).children(recursive=True))]
    except psutil.Error:
        return None
    return sum(rollup(pid).get("Pss", 0) for pid in pids)
