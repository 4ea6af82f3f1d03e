"""Everything a bench entry point started, stopped by PID when it gets SIGTERM, SIGINT or SIGHUP or fails.

Killed by a signal, a bench used to leave its private redis-server and the running contender's
master and workers alive, re-parented to pid 1. Each entry point's ``main`` now runs under
``cleans_up(name)``, and contenders and redis-servers register here while they run. When a stop
signal comes or an exception leaves ``main``, the contenders' whole trees are stopped first (as at
the end of a run), then whatever else still runs below this process (a worker it forked itself, a
launch cut short), then the redis-servers last; then one line on stderr and a non-zero exit status
(128 + the signal's number, or 1).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Protocol

import psutil

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Contender(Protocol):
    def stop(self) -> None: ...


class Server(Protocol):
    process: subprocess.Popen | None

    def stop(self) -> None: ...


class Signalled(SystemExit):
    """A stop signal, raised in the main thread.

    A ``SystemExit``: ``except Exception`` and rq's work loop (whose bare ``except`` ends the loop
    but lets a cold shutdown through) pass it on instead of carrying on with the next run.
    """

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


class Started:
    """What this process started and has not stopped yet, and the guard's state."""

    def __init__(self) -> None:
        self.contenders: dict[int, Contender] = {}
        self.servers: dict[int, Server] = {}
        self.owner = 0  # the pid that runs the guard: a child forked without exec inherits all of this
        self.received: int | None = None  # the first stop signal
        self.stopping = False  # from the first signal or the end of main on: no signal raises any more
        self.ignored: frozenset[int] = frozenset()  # started ignored (nohup): left so

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.owner:  # a forked worker, before it installs its own handlers
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.stopping:  # a second signal does not cut the stopping short
            return
        self.received, self.stopping = signum, True
        raise Signalled(signum)

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            if signum not in self.ignored:
                signal.signal(signum, self.handle)

    def stop_everything(self) -> None:
        """Contenders' trees first, then anything else below this process, then the redis-servers."""
        self.stopping = True
        for contender in list(self.contenders.values()):
            with contextlib.suppress(Exception):  # what it left is below this process: the sweep gets it
                contender.stop()
        self.contenders.clear()
        servers = list(self.servers.values())
        keep = {server.process.pid for server in servers if server.process is not None}
        with contextlib.suppress(psutil.Error):
            below = [p for p in psutil.Process().children(recursive=True) if p.pid not in keep]
            for process in below:
                with contextlib.suppress(psutil.Error):
                    process.kill()
            psutil.wait_procs(below, timeout=5)
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
        self.servers.clear()


STARTED = Started()


def contender_started(contender: Contender) -> None:
    STARTED.contenders[id(contender)] = contender


def contender_stopped(contender: Contender) -> None:
    STARTED.contenders.pop(id(contender), None)


def server_started(server: Server) -> None:
    STARTED.servers[id(server)] = server


def server_stopped(server: Server) -> None:
    STARTED.servers.pop(id(server), None)


def keep_stop_signals() -> None:
    """Put the guard's handlers back after code that installs its own (rq's ``Worker.work`` in this process)."""
    if STARTED.owner == os.getpid():
        STARTED.install()


def leave(line: str, status: int) -> None:
    print(line, file=sys.stderr, flush=True)
    raise SystemExit(status)


@contextlib.contextmanager
def cleans_up(name: str) -> Iterator[None]:
    """Run an entry point (as a decorator or a ``with`` block) so that nothing it started outlives it.

    A stop signal the bench was started with ignored (``nohup``) stays ignored.
    """
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    STARTED.owner, STARTED.received, STARTED.stopping = os.getpid(), None, False
    STARTED.ignored = frozenset(signum for signum, handler in previous.items() if handler == signal.SIG_IGN)
    STARTED.install()
    failure: BaseException | None = None
    try:
        yield
    except Signalled:
        pass
    except SystemExit:  # argparse's usage, no redis-server: their own message and status
        if os.getpid() != STARTED.owner or STARTED.received is None:
            raise
    except BaseException as exc:
        if os.getpid() != STARTED.owner:
            raise
        failure = exc
    finally:
        if os.getpid() == STARTED.owner:
            STARTED.stop_everything()  # after a normal end, only what a run forgot to stop
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    if STARTED.received is not None:
        signame = signal.Signals(STARTED.received).name
        leave(f"{name}: stopped by {signame}; everything it started is stopped", 128 + STARTED.received)
    if failure is not None:
        reason = " ".join(f"{type(failure).__name__}: {failure}".split())
        leave(f"{name}: failed: {reason}; everything it started is stopped", 1)
