"""Log files: one for everything, per queue list or per worker, from a path pattern; reopened on HUP.

The pattern may use ``{queues}`` (the queue list, ``master`` in the master), ``{index}`` (the
worker's index in its list, ``master`` in the master) and ``{pid}``. The master opens its file at
start; each worker, right after the fork, points the inherited handler at its own file, so the
worker's log and its jobs' log (rq's loggers, and any logger that reaches the root) land there.
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import sys
from pathlib import Path
from types import FrameType
from typing import IO, cast

PLACEHOLDERS = ("queues", "index", "pid")
MASTER_LABEL = "master"
DAEMON_DEFAULT = "rqpool.log"


class ReopenableFileHandler(logging.FileHandler):
    """A FileHandler that can reopen its path (after logrotate) or switch to another path.

    A signal handler must not close the stream an interrupted ``emit()`` is writing to, so a
    signal only asks for a reopen (:meth:`request_reopen`); the next record reopens first.
    A path that cannot be opened (logrotate left a file where a directory was, a full or
    read-only disk) never raises into the caller, which may be the master's loop or rq's own
    code: the current file is kept and the failure is written to it and to stderr.
    """

    reopen_requested = False
    std_streams = False  # daemon mode: fds 1 and 2 follow this handler's file

    def __init__(self, path: str):
        super().__init__(path, mode="a", encoding="utf-8", delay=False)

    def request_reopen(self) -> None:
        self.reopen_requested = True

    def emit(self, record: logging.LogRecord) -> None:
        if self.reopen_requested:
            self.reopen_requested = False
            self.switch(self.baseFilename)
        super().emit(record)

    def switch(self, path: str) -> bool:
        """Append to ``path`` from now on (the same path: a reopen); False if it cannot be opened."""
        path = os.path.abspath(path)
        try:
            make_parent(path)
            stream = cast(io.TextIOWrapper, open(path, self.mode, encoding=self.encoding, errors=self.errors))  # noqa: SIM115
        except OSError as exc:
            self._report_failure(path, exc)
            return False
        self.acquire()
        try:
            old, self.stream, self.baseFilename = self.stream, stream, path
            if old is not None:
                old.close()
            if self.std_streams:
                self.redirect_std_streams()
        finally:
            self.release()
        return True

    def redirect_std_streams(self) -> None:
        """Point fds 1 and 2 at this file, so stray prints, tracebacks and ``handleError`` land there."""
        self.std_streams = True
        if self.stream is None:
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(OSError):
            os.dup2(self.stream.fileno(), 1)
            os.dup2(self.stream.fileno(), 2)

    def _report_failure(self, path: str, exc: OSError) -> None:
        """Say why, in the file we keep and on stderr (if that is somewhere else); never raise."""
        record = logging.makeLogRecord(
            {
                "name": __name__,
                "levelno": logging.ERROR,
                "levelname": "ERROR",
                "msg": "cannot open log file %s: %s; still writing to %s",
                "args": (path, exc.strerror or exc, self.baseFilename),
            }
        )
        try:
            self.filter(record)
            line = self.format(record) + self.terminator
        except Exception:
            line = f"rqpool: {record.getMessage()}\n"
        targets: list[IO[str]] = [self.stream] if self.stream is not None else []
        if not self.std_streams and not _same_file(self.stream, sys.stderr):
            targets.append(sys.stderr)
        for target in targets:
            with contextlib.suppress(Exception):
                target.write(line)
                target.flush()


def _same_file(a: IO[str] | None, b: IO[str] | None) -> bool:
    try:
        return a is not None and b is not None and os.path.samestat(os.fstat(a.fileno()), os.fstat(b.fileno()))
    except (OSError, ValueError, AttributeError):
        return False


def make_parent(path: str) -> None:
    """Create the file's directory; something other than a directory in the way is ENOTDIR, not EEXIST."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), exc.filename) from None


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
        """Open the master's file; OSError if it cannot be created (the caller exits with one line)."""
        path = expand(self.pattern, MASTER_LABEL, MASTER_LABEL, os.getpid())
        make_parent(path)
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


def redirect_std_streams() -> None:
    """Daemon mode: fds 1 and 2 follow the log file, now and after every reopen or worker switch."""
    if _active is not None and _active.handler is not None:
        _active.handler.redirect_std_streams()
