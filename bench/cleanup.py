"""Everything a bench entry point started, stopped by PID when it gets SIGTERM, SIGINT or SIGHUP or fails.

Killed by a signal, a bench used to leave its private redis-server and the running contender's
master and workers alive, re-parented to pid 1. Each entry point's ``main`` now runs under
``cleans_up(name)``, and contenders and redis-servers register here while they run. When a stop
signal comes or an exception leaves ``main``, the contenders' whole trees are stopped first (as at
the end of a run), then whatever else still runs below this process (a worker it forked itself, a
launch cut short), then the redis-servers last; then one line on stderr and a non-zero exit status
(128 + the signal's number, or 1). A signal whose exception Python drops (raised in an at-fork
callback or a ``__del__``) is sent again every second until the guard has it.
"""

from __future__ import annotations

import _thread
import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any, NoReturn, Protocol, TypeVar

import psutil

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
INSIST_SECONDS = 1.0  # how often the signal is sent again until the guard has it
Result = TypeVar("Result")


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
        self.guard: CodeType | None = None  # the guard's own code: a signal never raises in it
        self.received: int | None = None  # the first stop signal
        self.stopping = False  # set by the guard once it has the signal or main ended: nothing raises then
        self.ignored: frozenset[int] = frozenset()  # started ignored (nohup): left so

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.owner:  # a forked worker, before it installs its own handlers
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.stopping:  # a second signal does not cut the stopping short
            return
        if self.received is None:
            self.received = signum
            # not threading.Thread: its start takes a lock this thread may hold where the signal came
            _thread.start_new_thread(self.insist, (signum,))
        if frame is None or frame.f_code is not self.guard:
            raise Signalled(self.received)

    def insist(self, signum: int) -> None:
        """Send the signal again until the guard has it.

        Raised where Python ignores exceptions (an at-fork callback such as logging's, run at each
        of rq's forks; a ``__del__``), it is printed and dropped, and the bench would go on.
        """
        while not self.stopping:
            time.sleep(INSIST_SECONDS)
            if not self.stopping:
                os.kill(self.owner, signum)

    def begin(self, guard: CodeType) -> dict[int, Any]:
        """Take over the stop signals for the guard whose code is ``guard``; return the handlers before."""
        previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        self.owner, self.guard, self.received, self.stopping = os.getpid(), guard, None, False
        self.ignored = frozenset(signum for signum, handler in previous.items() if handler == signal.SIG_IGN)
        self.install()
        return previous

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            if signum not in self.ignored:
                signal.signal(signum, self.handle)

    def stop_everything(self) -> None:
        """Contenders' trees first, then anything else below this process, then the redis-servers."""
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


def leave(line: str, status: int) -> NoReturn:
    print(line, file=sys.stderr, flush=True)
    raise SystemExit(status)


def cleans_up(name: str) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Run an entry point's ``main`` so that nothing it started outlives it.

    A stop signal the bench was started with ignored (``nohup``) stays ignored.
    """

    def decorate(main: Callable[..., Result]) -> Callable[..., Result]:
        @functools.wraps(main)
        def guarded(*args: object, **kwargs: object) -> Result:
            previous = STARTED.begin(guarded.__code__)
            failure: BaseException | None = None
            try:
                return main(*args, **kwargs)
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
                    STARTED.stopping = True  # here, in the guard's frame, where no signal raises
                    STARTED.stop_everything()  # after a normal end, only what a run forgot to stop
                    if STARTED.received is None:  # else the handler stays: a late resent signal is dropped
                        for signum, handler in previous.items():
                            signal.signal(signum, handler)
            if STARTED.received is not None:
                signame = signal.Signals(STARTED.received).name
                leave(f"{name}: stopped by {signame}; everything it started is stopped", 128 + STARTED.received)
            reason = " ".join(f"{type(failure).__name__}: {failure}".split())
            leave(f"{name}: failed: {reason}; everything it started is stopped", 1)

        return guarded

    return decorate
