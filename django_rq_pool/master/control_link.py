"""The master's end of the control plane: it runs the control child and applies its commands.

The master never talks to Redis. It forks a control child (control/child.py), supervises it
like a worker (restarted with backoff when it dies), and talks to it over one socket pair
(control/protocol.py). What goes out is in control_feed.py; the overrides and the plan they make
in overrides.py; the commands that come back in control_commands.py. Nothing here wakes the
master on a timer except a pending restart, and, at the start, the wait for the stored overrides.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from django_rq_pool.config.control import ControlSettings
from django_rq_pool.config.plan import PoolPlan
from django_rq_pool.control import protocol
from django_rq_pool.control.protocol import TO_MASTER, Closed, ProtocolError, Sender
from django_rq_pool.master.control_commands import ControlCommands
from django_rq_pool.master.control_feed import ControlFeed
from django_rq_pool.master.overrides import OverrideBook

if TYPE_CHECKING:
    from django_rq_pool.master.arbiter import Arbiter
    from django_rq_pool.master.roster import WorkerRecord

log = logging.getLogger(__name__)

RESTART_BASE = 0.5
RESTART_MAX = 30.0
STABLE_AFTER = 10.0  # a control child up this long resets the restart backoff
STOP_WAIT = 3.0  # at the exit, for the child to remove the record
HOLD_AT_START = 1.0  # the first workers wait this long at most for the stored overrides


class ControlLink:
    """Owned by the arbiter; see the module docstring."""

    feed: ControlFeed  # set by attach, with the arbiter
    commands: ControlCommands

    def __init__(self, settings: ControlSettings):
        self.settings = settings
        self.arbiter: Arbiter | None = None
        self.book = OverrideBook(settings.max_workers)
        self.pid: int | None = None
        self.sock: socket.socket | None = None
        self.started = 0.0
        self.failures = 0
        self.restart_at: float | None = None
        self.identity: dict[str, Any] = {}
        self.holding = False  # no worker forked yet: waiting for the stored overrides
        self.hold_until = 0.0

    # -- wiring --------------------------------------------------------------------------

    def attach(self, arbiter: Arbiter) -> None:
        """At the master's start, before the first fork of a worker."""
        from django_rq_pool import __version__

        self.arbiter = arbiter
        hostname = socket.gethostname()
        self.identity = {
            "id": f"{hostname}:{arbiter.pid}",
            "name": self.settings.name or hostname,
            "host": hostname,
            "pid": arbiter.pid,
            "app": arbiter.options.app_name,
            "version": __version__,
            "started_at": time.time(),
        }
        self.book.base = arbiter.plan
        self.feed = ControlFeed(arbiter, self.book, self.identity)
        self.commands = ControlCommands(arbiter, self.book, self.feed)
        arbiter.roster.observer = self.feed
        arbiter.wakeups.add_deadline(self.deadline)
        # A burst pool does not wait: it exits as soon as it has no worker.
        self.holding, self.hold_until = not arbiter.options.burst, time.monotonic() + HOLD_AT_START
        self.start_child()

    @property
    def fd(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def owns(self, pid: int) -> bool:
        return pid == self.pid

    def deadline(self, now: float) -> float | None:
        if self.holding:
            return self.hold_until
        return self.restart_at

    def _release_hold(self, why: str) -> None:
        """Let the first workers start without the stored overrides (they apply when read)."""
        if self.holding and self.arbiter is not None:
            self.holding = False
            log.warning("control: starting workers without the stored overrides: %s", why)
            self.arbiter.replan()

    def close(self) -> None:
        if self.sock is not None:
            if self.arbiter is not None:
                self.arbiter.wakeups.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def finish(self, timeout: float = STOP_WAIT) -> None:
        """At the master's exit: close the pipe and give the child a moment to drop the record.

        Bounded, and only at exit: the record is gone before the master's last log line, and a
        child stuck on a dead Redis is left to finish by itself.
        """
        self.close()
        deadline = time.monotonic() + timeout
        while self.pid is not None and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                pid = self.pid
            if pid == self.pid:
                self.pid = None
            else:
                time.sleep(0.01)

    # -- the child -----------------------------------------------------------------------

    def start_child(self) -> None:
        from django_rq_pool.control.child import run_control_child

        arbiter = self.arbiter
        assert arbiter is not None
        self.restart_at = None
        self.close()
        master_end, child_end = protocol.socket_pair()
        self.sock = master_end
        arbiter.wakeups.add_reader(master_end.fileno(), self.poll)  # so every other child closes it
        pid = arbiter.forker.fork_helper(
            "control",
            f"rqpool-control[{arbiter.options.app_name}]: {self.identity['id']}",
            lambda: run_control_child(child_end, self.settings.heartbeat, arbiter.options.max_memory),
            ignore_stop=True,  # INT, QUIT, TERM: it ends when the master's end of the pipe closes
        )
        child_end.close()
        if pid < 0:
            self._schedule_restart("fork failed")
            return
        self.pid, self.started = pid, time.monotonic()
        self.feed.sender = Sender(master_end)
        log.info("control child %d started (registry id %s)", pid, self.identity["id"])
        self.feed.send_snapshot()

    def child_exited(self, status: int) -> None:
        from django_rq_pool.master.forking import describe_status

        self.pid = None
        if time.monotonic() - self.started >= STABLE_AFTER:
            self.failures = 0
        self._schedule_restart(describe_status(status))

    def _schedule_restart(self, why: str) -> None:
        self.close()
        self.failures += 1
        delay = min(RESTART_MAX, RESTART_BASE * 2 ** min(self.failures - 1, 10))
        self.restart_at = time.monotonic() + delay
        log.warning("control child %s; restarting it in %.1fs (the workers are not affected)", why, delay)

    # -- each pass of the master's loop --------------------------------------------------

    def poll(self) -> None:
        """Apply what the child sent (called when the pipe is readable)."""
        if self.sock is None:
            return
        try:
            messages = protocol.receive(self.sock, TO_MASTER)
        except Closed:
            self.close()  # the child is dying; the reaper schedules its restart
            return
        for message in messages:
            if isinstance(message, ProtocolError):
                log.error("control: refused a bad message from the control child: %s", message)
            elif message["t"] == "command":
                self.commands.run(message)
            elif message["t"] == "overrides":
                self.load_overrides(message["overrides"])
            elif message["t"] == "resync":
                self.feed.send_snapshot()
            elif message["t"] == "autoscale":
                self.commands.apply_autoscale(message)

    def after_pass(self) -> None:
        """Restart the child when due, and send the state that changed in this pass."""
        arbiter = self.arbiter
        if arbiter is None:
            return
        arbiter.roster.prefer_retire = set()
        if self.holding and time.monotonic() >= self.hold_until:
            self._release_hold(f"not read within {HOLD_AT_START:.0f}s (is Redis down?)")
        if self.restart_at is not None and time.monotonic() >= self.restart_at:
            self.start_child()
        self.feed.send_changes()

    def worker_exited(self, record: WorkerRecord, status: int) -> None:
        self.feed.worker_exited(record, status)

    # -- overrides -----------------------------------------------------------------------

    def rebase(self, plan: PoolPlan, why: str = "HUP") -> PoolPlan:
        """A new base plan (reload): see overrides.py."""
        return self.book.rebase(plan, self.arbiter.resized if self.arbiter is not None else 0, why)

    def load_overrides(self, stored: dict[str, dict[str, int]]) -> None:
        """The overrides stored under the pool's name, once per master (a restart, a hot swap)."""
        arbiter = self.arbiter
        if self.book.loaded or arbiter is None:
            return
        holding, self.holding = self.holding, False
        self.book.take_stored(stored, arbiter.plan)
        if self.book.overrides:
            arbiter.plan = self.rebase(arbiter.plan if self.book.base is None else self.book.base, "start")
            log.info("control: stored overrides applied: %s", arbiter.describe_plan())
        if self.book.overrides or holding:
            arbiter.replan()
