"""What the master's loop sleeps on: signals, pipes and deadlines, behind one ``select``.

Signal handlers only enqueue the signal; Python's wake-up fd turns every signal (SIGCHLD
included) into a byte on a pipe in the same ``select``. Any other source registers itself: a
pipe with :meth:`Wakeups.add_reader` (its callback runs at the start of the next pass) and a
time with :meth:`Wakeups.add_deadline` (the loop wakes by then). An idle pool has no tick:
it sleeps until one of them fires, at most ``longest`` seconds.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable

MAX_QUEUED_SIGNALS = 100

Deadline = Callable[[float], "float | None"]  # given now (monotonic): when to look again, None if never


class Wakeups:
    """The signal queue, the registered pipes and deadlines, and the sleep between passes."""

    def __init__(self) -> None:
        self.signals: deque[int] = deque()
        self._wakeup: tuple[int, int] = (-1, -1)
        self._readers: dict[int, Callable[[], None]] = {}
        self._ready: set[int] = set()
        self._deadlines: list[Deadline] = []

    def install(self, signums: Iterable[int]) -> None:
        """Queue these signals from now on, and wake the sleep for every signal."""
        self._wakeup = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wakeup[1], warn_on_full_buffer=False)
        for signum in signums:
            signal.signal(signum, self._enqueue_signal)

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        for fd in {*self._wakeup, *self._readers} - {-1}:
            os.close(fd)
        self._readers.clear()

    def _enqueue_signal(self, signum: int, frame: object) -> None:
        if signum != signal.SIGCHLD and len(self.signals) < MAX_QUEUED_SIGNALS:
            self.signals.append(signum)

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` in the pass after ``fd`` becomes readable; the loop owns ``fd`` until removed."""
        self._readers[fd] = callback

    def remove_reader(self, fd: int) -> None:
        """Stop watching ``fd`` (the caller closes it)."""
        self._readers.pop(fd, None)
        self._ready.discard(fd)

    def add_deadline(self, deadline: Deadline) -> None:
        """``deadline(now)`` is asked before each sleep; the loop wakes by the time it returns."""
        self._deadlines.append(deadline)

    def master_fds(self) -> tuple[int, ...]:
        """Every fd of the master's that a forked child must close."""
        return tuple(sorted({*self._wakeup, *self._readers} - {-1}))

    def dispatch(self) -> None:
        """Run the callbacks of the pipes that were readable when the last sleep ended."""
        ready, self._ready = self._ready, set()
        for fd in sorted(ready):
            callback = self._readers.get(fd)
            if callback is not None:
                callback()

    def sleep(self, longest: float) -> None:
        """Until a signal, a readable pipe, or the next deadline (at once if signals are queued)."""
        now = time.monotonic()
        wake = now + longest
        for deadline in self._deadlines:
            when = deadline(now)
            if when is not None and when > now:
                wake = min(wake, when)
        timeout = 0.0 if self.signals else wake - now
        try:
            readable, _, _ = select.select([self._wakeup[0], *self._readers], [], [], timeout)
        except InterruptedError:
            return
        if self._wakeup[0] in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wakeup[0], 4096):
                    pass
        self._ready.update(fd for fd in readable if fd in self._readers)
