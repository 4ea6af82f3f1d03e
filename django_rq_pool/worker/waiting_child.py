"""The pipe between a worker and its waiting job child: the worker's end, and how the child reads the job.

The worker writes the hand-over once (its length, then the pickled mapping) and closes its end;
the child reads it, or sees end of file when the worker is done with it without a job.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
from dataclasses import dataclass, field
from typing import Any

LENGTH = struct.Struct("=I")  # the length of the pickled hand-over that follows it on the pipe


@dataclass
class WaitingChild:
    """The worker's end of a waiting job child: its pid and the pipe's write end."""

    pid: int
    write_fd: int
    reaped: bool = False
    parent: int = field(default_factory=os.getpid)  # a process forked from the worker (its scheduler) holds a copy

    def hand_over(self, message: dict[str, Any]) -> bool:
        """Send the job; False if the child is gone (the worker then forks as rq does)."""
        if self.exited():
            return False
        payload = pickle.dumps(message)
        data = memoryview(LENGTH.pack(len(payload)) + payload)
        try:
            while data:
                data = data[os.write(self.write_fd, data) :]
        except OSError:
            return False
        finally:
            self._close()
        return True

    def end(self) -> None:
        """SIGKILL and reap it: it has done nothing yet, so there is nothing to finish."""
        self._close()
        if self.reaped:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.reaped = True

    def exited(self) -> bool:
        """Reap it if it has exited; never waits, and never waits twice (its pid may be reused)."""
        if self.reaped:
            return True
        try:
            self.reaped = os.waitpid(self.pid, os.WNOHANG)[0] != 0
        except ChildProcessError:
            self.reaped = True
        return self.reaped

    def _close(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1


def read_hand_over(fd: int) -> dict[str, Any] | None:
    """In the waiting child: block until the job comes; None at end of file (the worker is done with it)."""
    header = _read_exactly(fd, LENGTH.size)
    if header is None:
        return None
    body = _read_exactly(fd, LENGTH.unpack(header)[0])
    return None if body is None else pickle.loads(body)


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
