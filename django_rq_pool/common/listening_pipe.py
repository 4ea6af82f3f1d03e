"""The listening pipe: each worker writes its pid once, when it first dequeues; the master reads.

Its two ends run in different processes (:func:`announce` in a worker, :func:`announced` in the
master), so the message format lives here, between them.
"""

from __future__ import annotations

import contextlib
import os
import struct

MESSAGE = struct.Struct("=i")  # a pid: 4 bytes, well under PIPE_BUF, so every write is atomic


def announce(fd: int) -> None:
    """In a worker: say "listening" on the master's pipe, then close it."""
    with contextlib.suppress(OSError):  # the master is gone, or not reading: it will not wait for us
        os.write(fd, MESSAGE.pack(os.getpid()))
    os.close(fd)


def announced(fd: int) -> list[int]:
    """In the master: the pids written to the pipe since the last call."""
    pids: list[int] = []
    while True:
        try:
            data = os.read(fd, 4096)  # a multiple of the message size: whole messages only
        except BlockingIOError:
            return pids
        if not data:
            return pids
        pids.extend(pid for (pid,) in MESSAGE.iter_unpack(data))
