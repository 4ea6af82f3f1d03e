"""Log files: one for everything, per queue list or per worker, from a path pattern; reopened on HUP.

The pattern may use ``{queues}`` (the queue list, ``master`` in the master), ``{index}`` (the
worker's index in its list, ``master`` in the master) and ``{pid}``. The master opens its file at
start; each worker, right after the fork, points the inherited handler at its own file, so the
worker's log and its jobs' log (rq's loggers, and any logger that reaches the root) land there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import FrameType

PLACEHOLDERS = ("queues", "index", "pid")
MASTER_LABEL = "master"
DAEMON_DEFAULT = "rqpool.log"


class ReopenableFileHandler(logging.FileHandler):
    """A FileHandler that can reopen its path (after logrotate) or switch to another path.

    A signal handler must not close the stream an interrupted ``emit()`` is writing to, so a
    signal only asks for a reopen (:meth:`request_reopen`); the next record reopens first.
    """

    reopen_requested = False

    def __init__(self, path: str):
        super().__init__(path, mode="a", encoding="utf-8", delay=False)

    def request_reopen(self) -> None:
        self.reopen_requested = True

    def emit(self, record: logging.LogRecord) -> None:
        if self.reopen_requested:
            self.reopen_requested = False
            self.switch(self.baseFilename)
        super().emit(record)

    def switch(self, path: str) -> None:
        """Close the current file and append to ``path`` (the same path: a reopen)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.baseFilename = os.path.abspath(path)
            self.stream = self._open()
        finally:
            self.release()


def expand(pattern: str, queues: str, index: int | str, pid: int) -> str:
    """The path for one process; ValueError names an unknown or malformed placeholder."""
    try:
        return pattern.format(queues=queues, index=index, pid=pid)
    except KeyError as exc:
        known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        raise ValueError(f"log file pattern {pattern!r}: unknown placeholder {{{exc.args[0]}}}; use {known}") from None
    except (IndexError, ValueError) as exc:
        raise ValueError(f"log file pattern {pattern!r}: {exc}") from None


class LogFiles:
    """The process's pool log file, shared by the master and (after a switch) each worker."""

    def __init__(self, pattern: str):
        expand(pattern, "q", 0, 1)
        self.pattern = pattern
        self.handler: ReopenableFileHandler | None = None

    def open_master(self) -> ReopenableFileHandler:
        path = expand(self.pattern, MASTER_LABEL, MASTER_LABEL, os.getpid())
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.handler = ReopenableFileHandler(path)
        return self.handler

    def reopen_master(self) -> None:
        """After daemonizing: the master's pid changed, so ``{pid}`` may name another file."""
        if self.handler is not None:
            self.handler.switch(expand(self.pattern, MASTER_LABEL, MASTER_LABEL, os.getpid()))

    def enter_worker(self, queues: str, index: int) -> None:
        """In a freshly forked worker: write to this worker's own file."""
        if self.handler is not None:
            self.handler.switch(expand(self.pattern, queues, index, os.getpid()))

    def reopen(self) -> None:
        if self.handler is not None:
            self.handler.switch(self.handler.baseFilename)


_active: LogFiles | None = None


def activate(files: LogFiles) -> ReopenableFileHandler:
    """Open the master's file and remember it for workers and reopening."""
    global _active
    _active = files
    return files.open_master()


def current_path() -> str | None:
    return None if _active is None or _active.handler is None else _active.handler.baseFilename


def enter_worker(queues: str, index: int) -> None:
    if _active is not None:
        _active.enter_worker(queues, index)


def reopen() -> None:
    """Reopen this process's log file (logrotate renamed it); a no-op when logging to stderr."""
    if _active is not None:
        _active.reopen()


def reopen_on_signal(signum: int, frame: FrameType | None) -> None:
    """Signal handler for workers: HUP reopens the log file before the next line is written."""
    if _active is not None and _active.handler is not None:
        _active.handler.request_reopen()


def redirect_std_streams(path: str) -> None:
    """Point fds 1 and 2 at ``path`` (daemon mode), so stray prints and crashes are kept too."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
