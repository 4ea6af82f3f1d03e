"""Real processes started at one instant to race for a lock: who wins, and what the losers saw."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable

Report = Callable[[bytes], None]


def race(contender: Callable[[Report], None], count: int, size: int, timeout: float = 30) -> list[bytes]:
    """Fork ``count`` processes that call ``contender(report)`` together; their records, as they came.

    ``report(record)`` sends the process's ``size``-byte record and waits until the parent has
    every record, so a winner holds what it won while the others try; the contender then cleans up.
    """
    start_r, start_w = os.pipe()
    result_r, result_w = os.pipe()
    release_r, release_w = os.pipe()
    pids = []

    def report(record: bytes) -> None:
        os.write(result_w, record)
        os.read(release_r, 1)  # EOF once the parent has every record

    try:
        for _ in range(count):
            pid = os.fork()
            if pid == 0:
                status = 1
                try:
                    for fd in (start_w, release_w, result_r):
                        os.close(fd)
                    os.read(start_r, 1)  # EOF for every contender at once when the parent closes its end
                    contender(report)
                    status = 0
                finally:
                    os._exit(status)
            pids.append(pid)
        os.close(start_w)  # go
        start_w = -1
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < count * size and time.monotonic() < deadline:
            if select.select([result_r], [], [], 0.5)[0]:
                data += os.read(result_r, count * size)
        return [data[i : i + size] for i in range(0, len(data), size)]
    finally:
        for fd in (start_w, release_w, start_r, result_r, result_w, release_r):
            if fd >= 0:
                os.close(fd)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
