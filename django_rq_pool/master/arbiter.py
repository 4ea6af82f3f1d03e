"""The pool master: one single-threaded loop that reaps, handles signals and keeps counts.

Each pass reaps every exited child, runs the callbacks of the pipes that became readable,
handles the queued signals in arrival order (handlers.py), then brings the lists that changed
to their counts and forks the janitors and heartbeat check due, or moves a stop along; then it
sleeps until a signal, a readable pipe or a deadline (wakeups.py). docs/architecture.md has the
whole picture. The loop's work per event does not grow with the number of workers.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from django_rq_pool.common.child import MASTER_SIGNALS
from django_rq_pool.common.exit_codes import EXIT_ERROR, EXIT_GAVE_UP, EXIT_OK
from django_rq_pool.common.linux import become_subreaper
from django_rq_pool.config.options import PoolOptions
from django_rq_pool.config.plan import PoolPlan
from django_rq_pool.master.backoff import Backoff
from django_rq_pool.master.control_link import ControlLink
from django_rq_pool.master.forking import Forker, describe_status, send
from django_rq_pool.master.handlers import SignalHandlers
from django_rq_pool.master.janitors import EXIT_WAIT, Janitors
from django_rq_pool.master.orphans import Orphans
from django_rq_pool.master.readiness import ListeningPipe
from django_rq_pool.master.reporting import Reporter
from django_rq_pool.master.roster import Roster, WorkerRecord
from django_rq_pool.master.spawner import Spawner, WorkerStart
from django_rq_pool.master.stopping import PoolExit, Stopper
from django_rq_pool.master.stuck_check import StuckCheck
from django_rq_pool.master.wakeups import Wakeups
from django_rq_pool.master.worker_exits import WorkerExits

__all__ = ["Arbiter", "PoolExit", "WorkerRecord"]

log = logging.getLogger(__name__)

IDLE_SLEEP = 60.0  # the longest sleep: passes come from signals, pipes and deadlines, not a tick


@dataclass
class Arbiter:
    """Runs the pool until it is told to stop; :meth:`run` returns the exit status."""

    plan: PoolPlan
    options: PoolOptions
    reload_plan: Callable[[], PoolPlan] | None = None
    on_ready: Callable[[Arbiter], None] | None = None
    on_status: Callable[[Arbiter, str], None] | None = None
    on_tick: Callable[[Arbiter], None] | None = None  # once per pass of the loop (watchdog, readiness)
    tick_every: float = IDLE_SLEEP  # the longest sleep (a systemd watchdog shortens it)
    roster: Roster = field(default_factory=Roster)
    reload_error: str | None = None
    spawning_paused: bool = False  # WINCH: no workers until a HUP
    paused: bool = False  # USR2: workers take no job until CONT; new ones start paused
    control: ControlLink | None = None  # the control plane's child and pipe (control_link.py)
    resized: int = 0  # TTIN minus TTOU since the last reload: kept when overrides rebuild the plan

    def __post_init__(self) -> None:
        self.pid = os.getpid()
        self._state = "starting"
        self.listening = ListeningPipe(self.roster)  # workers write their pid here once they dequeue
        self.wakeups = Wakeups()
        self.forker = Forker(self.pid, lambda: (*self.wakeups.master_fds(), self.listening.write_fd))
        self.backoff = Backoff(self.options, self.roster)
        self.spawner = Spawner(self.options, self.roster, self.backoff, self.forker, self._worker_start)
        self.janitors = Janitors(self.forker, self.options.app_name)
        self.stuck: StuckCheck | None = None
        self.reporter = Reporter(self, self.on_ready, self.on_status, self.on_tick)
        self.stopper = Stopper(self.options, self.roster, self.signal_workers, self.reporter.notify)
        self.handlers = SignalHandlers(self)
        self.orphans = Orphans(self.pid, self.options.own_process_groups, self._known_children)
        self.worker_exits = WorkerExits(self.options, self.orphans, self.janitors, self.spawner, self.backoff)

    # -- what others read ------------------------------------------------------------------

    @property
    def workers(self) -> dict[int, WorkerRecord]:
        """Every forked worker not yet reaped, by pid (stopping ones included)."""
        return self.roster.records

    @property
    def state(self) -> str:
        """starting, running, reloading, stopping or stopping (cold): for the title and systemd."""
        return self.stopper.state if self.stopper.stopping else self._state

    @state.setter
    def state(self, value: str) -> None:
        self._state = value

    @property
    def stop_mode(self) -> str | None:
        return self.stopper.mode

    def status_line(self) -> str:
        return self.reporter.status_line()

    def describe_plan(self) -> str:
        return self.reporter.describe_plan()

    def update_title(self) -> None:
        self.reporter.update_title()

    # -- setup -----------------------------------------------------------------------------

    def run(self) -> int:
        """Install signal handling, then loop until a stop completes."""
        become_subreaper()
        self._install()
        log.info("master started (pid %d): %s", self.pid, self.describe_plan())
        self.update_title()  # "starting", until the loop has forked the workers
        self.state = "running"
        self.replan()
        try:
            self.loop_once()  # forks the initial workers from the image loaded with the GC off (collector.py)
            while self.control is not None and self.control.holding:
                self.loop_once()  # the initial workers wait for the stored overrides (control_link.py)
            gc.enable()  # collections now skip that image: every fork froze it
            while True:
                self.loop_once()
        except PoolExit as done:
            self.reap_children()  # a worker that died as the pool decided to exit still gets its janitor
            self.janitors.flush()
            self.janitors.settle(EXIT_WAIT)
            if self.control is not None:
                self.control.finish()
            level = logging.INFO if done.status == EXIT_OK else logging.ERROR
            log.log(level, "master exiting with status %d: %s", done.status, done.reason)
            self.reporter.notify("STOPPING=1")
            return done.status
        except Exception as exc:
            log.error("master failed:\n%s", traceback.format_exc())
            if self.control is not None:
                self.control.finish()
            log.error(
                "master exiting with status %d: unexpected %s: %s; its workers finish their jobs and stop",
                EXIT_ERROR,
                type(exc).__name__,
                exc,
            )
            return EXIT_ERROR
        finally:
            self.wakeups.close()
            self.listening.close_write()

    def _install(self) -> None:
        self.wakeups.install(MASTER_SIGNALS)
        self.wakeups.add_reader(self.listening.open(), self.listening.read)
        if self.options.stuck_timeout > 0:
            self.stuck = StuckCheck(
                self.options.stuck_timeout, self.roster, self.forker, self.wakeups, self.options.app_name
            )
            self.wakeups.add_deadline(self.stuck.deadline)
        for deadline in (self.backoff.deadline, self.stopper.deadline, self.janitors.deadline):
            self.wakeups.add_deadline(deadline)
        if self.control is not None:
            self.control.attach(self)  # forks the control child and registers its pipe

    def _worker_start(self) -> WorkerStart:
        """What a new worker closes (the master's pipes), the pipe it says "listening" on, and the pause."""
        return WorkerStart(self.wakeups.master_fds(), self.listening.write_fd, self.paused)

    def _known_children(self) -> list[int]:
        known = [*self.workers, *self.janitors.pids()]
        if self.stuck is not None and self.stuck.pid is not None:
            known.append(self.stuck.pid)  # the heartbeat reader is the master's own child
        if self.control is not None and self.control.pid is not None:
            known.append(self.control.pid)
        return known

    # -- the loop --------------------------------------------------------------------------

    def loop_once(self) -> None:
        self.reap_children()
        self.wakeups.dispatch()
        while self.wakeups.signals:
            self.handlers.handle(self.wakeups.signals.popleft())
            self.reap_children()
        if self.stopper.stopping:
            self.move_stop_along()
        else:
            self.maintain_workers()
            self.janitors.start()  # after the replacements: a dead worker's accounting can wait a few ms
            if self.stuck is not None:
                self.stuck.maybe_start()
        self.update_title()
        self.reporter.tick()
        if self.control is not None:
            self.control.after_pass()  # state changes since the last pass, if any
        self.wakeups.sleep(self.tick_every)

    def reap_children(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            record = self.roster.remove(pid)
            if record is not None:
                self.worker_exits.handle(record, status)
                if self.control is not None:
                    self.control.worker_exited(record, status)
            elif self.janitors.reaped(pid, status):
                continue
            elif self.stuck is not None and pid == self.stuck.pid:
                self.stuck.finished(status)
            elif self.control is not None and self.control.owns(pid):
                self.control.child_exited(status)
            else:
                log.info("reaped process %d (not a worker: %s)", pid, describe_status(status))

    def maintain_workers(self) -> None:
        """Bring the lists that changed since the last pass (or whose backoff ended) to their counts."""
        now = time.monotonic()
        self.backoff.review(now)
        changed = self.roster.take_changed()
        if changed:
            wanted = {} if self.spawning_paused else {g.identity: g for g in self.plan.groups}
            self.spawner.fill(wanted, changed, now)
        if self.options.burst and not self.workers and not self.janitors.pending:
            raise PoolExit(EXIT_OK, "burst: every worker drained its queues")
        if changed and self.backoff.gave_up(self.plan.groups, now):
            raise PoolExit(
                EXIT_GAVE_UP,
                f"every queue list has failed to start for over {self.options.give_up_after:.0f}s "
                f"(last failures: {self.backoff.last_reasons(self.plan.groups)})",
            )
        self.reporter.check_ready()

    def move_stop_along(self) -> None:
        """While stopping: fork the janitors due, exit once everything is gone, else enforce the deadline."""
        self.janitors.start()
        if not self.workers and not self.janitors.pending:
            raise self.stopper.outcome()
        self.stopper.enforce(self.janitors.pids())

    # -- what the handlers use -------------------------------------------------------------

    def replan(self) -> None:
        """Give the roster the counts wanted now (none while WINCH holds, or while the stored
        overrides are read at the start: control_link.py)."""
        held = self.control is not None and self.control.holding
        self.roster.plan(() if self.spawning_paused or held else self.plan.groups)

    def begin_stop(self, mode: str, timeout: float | None) -> None:
        self.stopper.begin(mode, timeout)

    def signal_workers(self, signum: int) -> None:
        """Send ``signum`` to every worker; QUIT also frees their slots (they are stopping)."""
        for record in list(self.workers.values()):
            if signum == signal.SIGQUIT:
                self.roster.retire(record)
            send(record.pid, signum)
