"""``--daemon``: detach with a double fork and report readiness back to the shell that started us.

The starting process keeps the read end of a pipe and waits; the daemon writes one line on it:
``READY <pid>`` once every worker is up, or ``FAILED <status> <reason>`` if it stops before that.
So ``rqpool --daemon`` exits 0 only when the pool really runs, and a broken start is reported on
the terminal (or to the deploy script) instead of vanishing into a log file.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import time
from typing import NoReturn

EXIT_NOT_READY = 1


class Readiness:
    """The daemon's end of the pipe; the first report wins, later ones are ignored."""

    def __init__(self, fd: int):
        self.fd: int | None = fd

    @property
    def pending(self) -> bool:
        return self.fd is not None

    def _send(self, line: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, line.replace("\n", " ").encode()[:4000] + b"\n")
        except OSError:
            pass  # the starting shell is gone; nobody is waiting
        finally:
            os.close(self.fd)
            self.fd = None

    def ready(self) -> None:
        self._send(f"READY {os.getpid()}")

    def failed(self, status: int, reason: str) -> None:
        self._send(f"FAILED {status} {reason}")


class LastError(logging.Handler):
    """Remembers the last ERROR logged, to tell the starting shell why the daemon stopped."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.message = record.getMessage().splitlines()[0]


def daemonize(log_path: str, ready_timeout: float) -> Readiness:
    """Detach; returns only in the daemon (the grandchild). The caller's process exits with the result."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    if os.fork() > 0:
        os.close(write_fd)
        _wait_for_daemon(read_fd, log_path, ready_timeout)
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return Readiness(write_fd)


def _wait_for_daemon(read_fd: int, log_path: str, timeout: float) -> NoReturn:
    """In the starting process: wait for the daemon's report and exit with its verdict."""
    os.wait()  # the intermediate child exits at once
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _finish(
                EXIT_NOT_READY,
                f"rqpool: the daemon is not ready after {timeout:.0f}s (still starting or crash-looping); "
                f"it keeps running, see {log_path}\n",
            )
        readable, _, _ = select.select([read_fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(read_fd, 4096)
        if not chunk:
            _finish(EXIT_NOT_READY, f"rqpool: the daemon died before it was ready; see {log_path}\n")
        data += chunk
    kind, _, rest = data.decode(errors="replace").partition(" ")
    if kind == "READY":
        _finish(0, f"rqpool: daemon running (pid {rest.strip()}), log: {log_path}\n", sys.stdout)
    status, _, reason = rest.partition(" ")
    _finish(
        int(status) if status.isascii() and status.isdigit() else EXIT_NOT_READY,
        f"rqpool: the daemon failed to start: {reason}",
    )


def _finish(status: int, message: str, stream=None) -> NoReturn:  # type: ignore[no-untyped-def]
    out = stream or sys.stderr
    out.write(message if message.endswith("\n") else message + "\n")
    out.flush()
    os._exit(status)
