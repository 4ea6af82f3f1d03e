"""The pool master: one single-threaded loop that reaps, handles signals and keeps counts.

Signal handlers only enqueue the signal; Python's wake-up fd turns every signal (SIGCHLD
included) into a byte on a pipe that the loop sleeps on. Each pass of the loop:

1. reaps every exited child (``waitpid(-1, WNOHANG)``), logging pid, queue list and status;
2. handles the queued signals, one at a time, in arrival order;
3. maintains the plan for the queue lists that changed (see roster.py): forks missing workers
   (with crash-loop backoff) and warm-stops surplus ones, then forks a janitor for each worker
   that died (after its replacement); or, while stopping, escalates overdue stops;
4. sleeps until the next signal, message on one of its pipes, or deadline: an idle pool has no tick.

The loop's work per event does not grow with the number of workers.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import random
import select
import signal
import socket
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from uuid import uuid4

import psutil
from setproctitle import setproctitle

from django_rq_pool.common.child import MASTER_SIGNALS, enter_child
from django_rq_pool.common.exit_codes import EXIT_ERROR, EXIT_FORCED, EXIT_GAVE_UP, EXIT_OK, WORKER_HOOK_FAILED
from django_rq_pool.common.heartbeat_rule import heartbeat_interval
from django_rq_pool.common.linux import become_subreaper, child_pids
from django_rq_pool.common.listening_pipe import announced
from django_rq_pool.common.log_files import reopen as reopen_log_files
from django_rq_pool.config.loader import ConfigError
from django_rq_pool.config.options import PoolOptions
from django_rq_pool.config.plan import PoolPlan, QueueGroup
from django_rq_pool.helpers.heartbeat_check import Watched, run_monitor
from django_rq_pool.hooks import WorkerContext, run_hooks
from django_rq_pool.master.roster import Identity, Roster, WorkerRecord
from django_rq_pool.master.stuck import HeartbeatMonitor

log = logging.getLogger(__name__)

BACKOFF_BASE = 1.0
MAX_QUEUED_SIGNALS = 100
IDLE_SLEEP = 60.0  # the longest sleep: passes come from signals, pipes and deadlines, not a tick
JANITOR_RETRY = 1.0  # seconds between attempts to fork a janitor after fork() failed


class PoolExit(Exception):
    """Ends the loop with an exit status and a last log line."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class GroupHealth:
    """Crash-loop state of one queue list."""

    failures: int = 0
    next_spawn: float = 0.0
    failing_since: float | None = None
    last_reason: str = ""
    until: str = ""  # wall-clock time of the next start, for the log and the title

    def describe(self, name: str) -> str:
        return f"[{name}] until {self.until} ({self.last_reason}; {self.failures} failed starts)"


@dataclass
class Janitor:
    """A short-lived child that fails the jobs of a dead worker."""

    pid: int
    worker_name: str


def describe_status(status: int) -> str:
    """Human wording of a waitpid status."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.WEXITSTATUS(status)}"


def is_abnormal(status: int) -> bool:
    return os.WIFSIGNALED(status) or os.WEXITSTATUS(status) != 0


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
    janitors: dict[int, Janitor] = field(default_factory=dict)
    health: dict[Identity, GroupHealth] = field(default_factory=dict)
    signals: deque = field(default_factory=deque)
    state: str = "starting"
    reload_error: str | None = None
    spawning_paused: bool = False
    finished_slots: set = field(default_factory=set)
    stop_mode: str | None = None  # "graceful" or "cold" while stopping
    stop_deadline: float | None = None
    killed_on_stop: int = 0
    monitor: HeartbeatMonitor | None = None
    pending_janitors: list = field(default_factory=list)  # (WorkerRecord, status) whose janitor fork failed
    _wakeup: tuple[int, int] = (-1, -1)
    _listening: tuple[int, int] = (-1, -1)  # workers write their pid here once they dequeue (readiness.py)
    _sequence: int = 0
    _pid_list: tuple[int, str] = (-1, "")  # (roster version, its pids) for the process title
    _title: str = ""
    _ready_sent: bool = False
    _frozen: bool = False  # the first fork froze the image loaded before it

    @property
    def workers(self) -> dict[int, WorkerRecord]:
        """Every forked worker not yet reaped, by pid (stopping ones included)."""
        return self.roster.records

    # -- setup ---------------------------------------------------------------------------

    def run(self) -> int:
        """Install signal handling, then loop until a stop completes."""
        self.pid = os.getpid()
        self.hostname = socket.gethostname()
        become_subreaper()
        if self.options.stuck_timeout > 0:
            interval = heartbeat_interval(self.options.stuck_timeout)
            self.monitor = HeartbeatMonitor(
                self.options.stuck_timeout, interval, next_check=time.monotonic() + interval
            )
        self._install_signals()
        log.info("master started (pid %d): %s", self.pid, self.describe_plan())
        self.update_title()  # "starting", until the loop has forked the workers
        self.state = "running"
        self._replan()
        try:
            self.loop_once()  # forks the initial workers from the image loaded with the GC off (collector.py)
            gc.enable()  # collections now skip that image: every fork froze it
            while True:
                self.loop_once()
        except PoolExit as done:
            level = logging.INFO if done.status == EXIT_OK else logging.ERROR
            log.log(level, "master exiting with status %d: %s", done.status, done.reason)
            self._notify("STOPPING=1")
            return done.status
        except Exception as exc:
            log.error("master failed:\n%s", traceback.format_exc())
            log.error(
                "master exiting with status %d: unexpected %s: %s; its workers finish their jobs and stop",
                EXIT_ERROR,
                type(exc).__name__,
                exc,
            )
            return EXIT_ERROR
        finally:
            signal.set_wakeup_fd(-1)
            for fd in self._wakeup + self._listening:
                os.close(fd)

    def _install_signals(self) -> None:
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wakeup = (read_fd, write_fd)
        self._listening = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for signum in MASTER_SIGNALS:
            signal.signal(signum, self._enqueue_signal)

    def _enqueue_signal(self, signum: int, frame: object) -> None:
        if signum != signal.SIGCHLD and len(self.signals) < MAX_QUEUED_SIGNALS:
            self.signals.append(signum)

    # -- the loop ------------------------------------------------------------------------

    def loop_once(self) -> None:
        self.reap_children()
        for pid in announced(self._listening[0]):
            self.roster.mark_listening(pid)
        if self.monitor is not None:
            self.monitor.drain()
        while self.signals:
            self.handle_signal(self.signals.popleft())
            self.reap_children()
        if self.stop_mode is not None:
            self.start_janitors()
            self.check_stop()
        else:
            self.maintain_workers()
            self.start_janitors()  # after the replacements: a dead worker's accounting can wait a few ms
            self.check_heartbeats()
        self.update_title()
        if self.on_tick is not None:
            self.on_tick(self)
        self.sleep()

    def sleep(self) -> None:
        """Until a signal, a message on a pipe, or the next deadline: an idle pool has no tick."""
        if self.signals:
            return
        now = time.monotonic()
        pipes = [self._wakeup[0], self._listening[0]]
        if self.monitor is not None and self.monitor.fd >= 0:
            pipes.append(self.monitor.fd)  # drained as it comes, so a long report never blocks the check
        try:
            readable, _, _ = select.select(pipes, [], [], max(0.0, self._next_deadline(now) - now))
        except InterruptedError:
            return
        if self._wakeup[0] in readable:
            try:
                while os.read(self._wakeup[0], 4096):
                    pass
            except BlockingIOError:
                pass

    def _next_deadline(self, now: float) -> float:
        """When the loop must look again even if nothing happens."""
        deadlines = [now + self.tick_every]
        deadlines.extend(h.next_spawn for h in self.health.values())  # backoff ends
        for identity, health in self.health.items():
            starts = [r.started for r in self.roster.holders(identity)] if health.failures else []
            if starts:
                deadlines.append(min(starts) + self.options.min_uptime)  # a failing list recovers
        if self.stop_deadline is not None:
            deadlines.append(self.stop_deadline)
        if self.monitor is not None and self.monitor.pid is None and self.workers:
            deadlines.append(self.monitor.next_check)
        if self.pending_janitors:
            deadlines.append(now + JANITOR_RETRY)
        return min(d for d in deadlines if d > now)

    # -- reaping -------------------------------------------------------------------------

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
                self._worker_exited(record, status)
            elif pid in self.janitors:
                janitor = self.janitors.pop(pid)
                log.debug("janitor %d for worker %s %s", pid, janitor.worker_name, describe_status(status))
            elif self.monitor is not None and pid == self.monitor.pid:
                self._heartbeats_read(status)
            else:
                log.info("reaped process %d (not a worker: %s)", pid, describe_status(status))

    def _worker_exited(self, record: WorkerRecord, status: int) -> None:
        group = record.group
        uptime = time.monotonic() - record.started
        abnormal = is_abnormal(status)
        level = logging.WARNING if abnormal and not record.stopping else logging.INFO
        log.log(level, "worker %d [%s] %s after %.1fs", record.pid, group.name, describe_status(status), uptime)
        if abnormal:
            self._kill_strays()
            if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == WORKER_HOOK_FAILED):
                self.pending_janitors.append((record, status))  # a worker whose hook failed never took a job
        if self.options.burst and not abnormal:
            self.finished_slots.add((group.identity, record.context.index))
        if abnormal and not record.stopping and uptime < self.options.min_uptime:
            self._record_failure(group, f"worker {describe_status(status)} {uptime:.1f}s after start")

    def _record_failure(self, group: QueueGroup, reason: str) -> None:
        health = self.health.setdefault(group.identity, GroupHealth())
        health.failures += 1
        health.last_reason = reason
        now = time.monotonic()
        if health.failing_since is None:
            health.failing_since = now
        # Exponential, capped, with +-25% jitter so lists failing together (Redis down) spread out.
        delay = min(self.options.backoff_max, BACKOFF_BASE * 2 ** min(health.failures - 1, 30))
        delay *= random.uniform(0.75, 1.25)
        health.next_spawn = now + delay
        health.until = time.strftime("%H:%M:%S", time.localtime(time.time() + delay))
        log.warning(
            "queue list [%s] is failing (%s); %d failed starts in a row, backing off: next start in %.1fs at %s",
            group.name,
            reason,
            health.failures,
            delay,
            health.until,
        )

    def _kill_strays(self) -> None:
        """SIGKILL orphans of a dead worker (its job child, its scheduler) adopted by the master."""
        known = set(self.workers) | set(self.janitors)
        if self.monitor is not None and self.monitor.pid is not None:
            known.add(self.monitor.pid)  # the heartbeat reader is the master's own child
        for child_pid in child_pids(self.pid):
            if child_pid in known:
                continue
            try:
                child = psutil.Process(child_pid)
                pgid = os.getpgid(child.pid)
                if pgid == child.pid:
                    os.killpg(pgid, signal.SIGKILL)
                else:
                    os.kill(child.pid, signal.SIGKILL)
                log.warning("killed orphaned process %d (%s) of a dead worker", child.pid, child.name())
            except (ProcessLookupError, psutil.NoSuchProcess):
                continue

    def _spawn_janitor(self, record: WorkerRecord, status: int) -> None:
        from django_rq_pool.helpers.janitor import run_janitor

        reason = (
            f"worker {record.context.name} (pid {record.pid}, queues {record.group.name}) "
            f"{describe_status(status)}{f' ({record.kill_reason})' if record.kill_reason else ''} "
            "while running this job; failed by rqpool"
        )
        pid = self._fork()
        if pid == 0:
            code = 1
            try:
                # Finish the accounting whatever stops the pool: the master's exit (QUIT), a Ctrl-C
                # or a TERM sent to every process. It gives up by itself (see janitor.py).
                if enter_child(
                    f"janitor:{record.group.name}", self.pid, self._wakeup + self._listening, ignore_stop=True
                ):
                    setproctitle(f"rqpool-janitor[{self.options.app_name}]: {record.context.name}")
                    code = run_janitor(record.context.name, record.group, reason)
            finally:
                os._exit(code)
        if pid > 0:
            self.janitors[pid] = Janitor(pid, record.context.name)
        else:
            log.warning("janitor for worker %s not started (fork failed); retrying next pass", record.context.name)
            self.pending_janitors.append((record, status))

    def start_janitors(self) -> None:
        """Fork a janitor for each dead worker; one whose fork failed is retried on the next pass."""
        pending, self.pending_janitors = self.pending_janitors, []
        for index, (record, status) in enumerate(pending):
            self._spawn_janitor(record, status)
            if self.pending_janitors:  # forking fails: keep the rest for later
                self.pending_janitors.extend(pending[index + 1 :])
                return

    # -- stuck workers (see heartbeat.py) ------------------------------------------------

    def check_heartbeats(self) -> None:
        """Fork the monitor child when due; it reads heartbeats from Redis so the master never does."""
        monitor = self.monitor
        if monitor is None:
            return
        if not monitor.due(time.monotonic()) or not self.workers:
            return
        watched = [
            Watched(r.pid, r.context.name, r.group.queues[0], r.group.options.worker_class)
            for r in self.workers.values()
        ]
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        pid = self._fork()
        if pid == 0:
            code = 1
            try:
                os.close(read_fd)
                if enter_child("heartbeat-check", self.pid, self._wakeup + self._listening):
                    setproctitle(f"rqpool-heartbeat[{self.options.app_name}]: checking {len(watched)} workers")
                    code = run_monitor(watched, write_fd, monitor.interval)
            finally:
                os._exit(code)
        os.close(write_fd)
        if pid < 0:
            os.close(read_fd)
            monitor.next_check = time.monotonic() + monitor.interval
            return
        monitor.started(pid, read_fd, time.monotonic())

    def _heartbeats_read(self, status: int) -> None:
        assert self.monitor is not None
        live = {pid: time.time() - (time.monotonic() - r.started) for pid, r in self.workers.items()}
        for pid, silent, limit in self.monitor.finished(status == 0, live):
            record = self.workers[pid]
            if record.kill_reason:
                continue
            record.kill_reason = f"stuck: no heartbeat in Redis for {silent:.0f}s, limit {limit:.0f}s"
            log.error("worker %d [%s] is %s; SIGKILL, it will be replaced", pid, record.group.name, record.kill_reason)
            self._kill(pid, signal.SIGKILL)

    # -- signals -------------------------------------------------------------------------

    def handle_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        log.info("master received %s", name)
        handler = getattr(self, f"handle_{name[3:].lower()}", None)
        if handler is not None:
            handler()

    def handle_hup(self) -> None:
        reopen_log_files()
        self.signal_workers(signal.SIGHUP)  # workers reopen their log files
        self.spawning_paused = False
        self._replan()
        if self.reload_plan is None:
            log.info("HUP: configuration comes from %s; nothing to reload", self.plan.source)
            return
        self.state = "reloading"
        self.update_title()  # a reload can take a while (imports): show it
        self._notify("RELOADING=1")
        try:
            plan = self.reload_plan()
        except ConfigError as exc:
            self.reload_error = str(exc)
            log.error("HUP: reload failed, keeping the last good configuration: %s", exc)
        except Exception as exc:  # e.g. a class module that raises on import: never a reason to die
            self.reload_error = f"{type(exc).__name__}: {exc}"
            log.error("HUP: reload failed, keeping the last good configuration:\n%s", traceback.format_exc())
        else:
            self.reload_error = None
            self.plan = plan
            log.info("HUP: reloaded %s", self.describe_plan())
        self._replan()
        self.state = "running"
        self._ready_sent = False

    def handle_quit(self) -> None:
        if self.stop_mode is not None:
            self.escalate_stop("QUIT")
            return
        self.begin_stop("graceful", None)

    def handle_int(self) -> None:
        if self.stop_mode is not None:
            self.escalate_stop("INT")
            return
        self.signal_workers(signal.SIGQUIT)
        raise PoolExit(EXIT_OK, "INT: workers told to finish their jobs and stop; master exits now")

    def handle_term(self) -> None:
        if self.stop_mode is not None:
            self.escalate_stop("TERM")
            return
        mode = self.options.term_mode
        if mode == "immediate":
            self.begin_stop("cold", self.options.kill_timeout)
        elif mode == "graceful-wait":
            self.begin_stop("graceful", self.options.graceful_timeout)
        else:
            self.signal_workers(signal.SIGQUIT)
            raise PoolExit(EXIT_OK, "TERM (graceful): workers told to finish their jobs; master exits now")

    def handle_winch(self) -> None:
        self.spawning_paused = True
        self._replan()
        self.signal_workers(signal.SIGQUIT)
        log.info("WINCH: stopping every worker; send HUP to start them again")

    def handle_usr1(self) -> None:
        self.signal_workers(signal.SIGUSR1)

    def handle_usr2(self) -> None:
        self.signal_workers(signal.SIGUSR2)

    def handle_cont(self) -> None:
        self.signal_workers(signal.SIGCONT)

    def handle_ttin(self) -> None:
        self._resize(+1)

    def handle_ttou(self) -> None:
        self._resize(-1)

    def _resize(self, delta: int) -> None:
        """TTIN/TTOU: one worker more or less for every queue list, until the next reload."""
        groups = tuple(replace(g, count=max(0, g.count + delta)) for g in self.plan.groups)
        self.plan = PoolPlan(groups, self.plan.source)
        self._replan()
        log.info("%s: %s", "TTIN" if delta > 0 else "TTOU", self.describe_plan())

    # -- stopping ------------------------------------------------------------------------

    def escalate_stop(self, name: str) -> None:
        """A stop signal during a stop: graceful becomes cold; during a cold stop, SIGKILL now."""
        if self.stop_mode == "graceful":
            log.warning("%s during a graceful stop: escalating to a cold stop (running jobs are killed)", name)
            self.begin_stop("cold", self.options.kill_timeout)
        else:
            log.warning("%s during a cold stop: killing the remaining workers now", name)
            self.stop_deadline = time.monotonic()

    def begin_stop(self, mode: str, timeout: float | None) -> None:
        """Graceful: QUIT every worker. Cold: also kill every running job (it ends failed)."""
        self.stop_mode = mode
        self.state = "stopping" if mode == "graceful" else "stopping (cold)"
        self.stop_deadline = None if timeout is None else time.monotonic() + timeout
        self._notify("STOPPING=1")
        self.signal_workers(signal.SIGQUIT)
        if mode == "cold":
            self.signal_workers(signal.SIGUSR1)

    def check_stop(self) -> None:
        if not self.workers and not self.janitors:
            self._kill_strays()
            if self.killed_on_stop:
                raise PoolExit(
                    EXIT_FORCED,
                    f"stopped, but {self.killed_on_stop} worker(s) ignored the stop and were killed with SIGKILL",
                )
            raise PoolExit(EXIT_OK, f"all workers stopped ({self.stop_mode} stop)")
        if self.stop_deadline is None or time.monotonic() < self.stop_deadline:
            return
        if self.stop_mode == "graceful":
            log.warning("graceful stop timed out; killing the jobs still running")
            self.begin_stop("cold", self.options.kill_timeout)
            return
        for record in list(self.workers.values()):
            if not record.killed:
                log.error("worker %d [%s] did not stop; SIGKILL", record.pid, record.group.name)
                record.killed = True
                self.killed_on_stop += 1
            self._kill(record.pid, signal.SIGKILL)
        for janitor in self.janitors.values():
            self._kill(janitor.pid, signal.SIGKILL)
        self.stop_deadline = time.monotonic() + self.options.kill_timeout

    def signal_workers(self, signum: int) -> None:
        for record in list(self.workers.values()):
            if signum == signal.SIGQUIT:
                self.roster.retire(record)
            self._kill(record.pid, signum)

    def _kill(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            log.debug("worker %d already gone (%s not sent)", pid, signal.Signals(signum).name)
        except PermissionError:
            log.error("cannot send %s to worker %d: permission denied", signal.Signals(signum).name, pid)

    # -- maintaining counts --------------------------------------------------------------

    def _replan(self) -> None:
        self.roster.plan(() if self.spawning_paused else self.plan.groups)

    def maintain_workers(self) -> None:
        """Bring the lists that changed since the last pass (or whose backoff ended) to their counts."""
        now = time.monotonic()
        for identity, health in self.health.items():  # one entry per list that ever failed
            if 0 < health.next_spawn <= now:
                self.roster.touch(identity)
        self._reset_recovered_groups(now)
        changed = self.roster.take_changed()
        if changed:
            self._fill(changed, now)
        if self.options.burst and not self.workers and not self.janitors and not self.pending_janitors:
            raise PoolExit(EXIT_OK, "burst: every worker drained its queues")
        if changed:
            self._check_gave_up(now)
        if not self._ready_sent and self._all_up():
            self._ready_sent = True
            self._notify("READY=1")
            if self.on_ready is not None:
                self.on_ready(self)

    def _fill(self, changed: set[Identity], now: float) -> None:
        """Stop the surplus of the lists that changed, and fork what they miss."""
        wanted = {} if self.spawning_paused else {g.identity: g for g in self.plan.groups if g.identity in changed}
        for identity in changed - wanted.keys():
            for record in self.roster.holders(identity):
                self._stop_worker(record, "its queue list is no longer configured")
        for group in wanted.values():
            for record in self.roster.surplus(group.identity):
                self._stop_worker(record, f"[{group.name}] is down to {group.count}")
            free = self.roster.missing(group.identity)
            if free:
                self._spawn_missing(group, free, now)

    def _spawn_missing(self, group: QueueGroup, free: list[int], now: float) -> None:
        health = self.health.get(group.identity)
        if self.options.burst:
            free = [i for i in free if (group.identity, i) not in self.finished_slots]
        if health is not None and health.failures:
            if now < health.next_spawn:
                return
            free = free[:1]  # while backing off, probe with one worker at a time
            health.next_spawn = now + self.options.backoff_max
        for index in free:
            if not self.spawn_worker(group, index):
                return  # fork failed: backing off now, not forking again in this pass

    def _reset_recovered_groups(self, now: float) -> None:
        for identity, health in self.health.items():
            if not health.failures:
                continue
            if any(now - r.started >= self.options.min_uptime for r in self.roster.holders(identity)):
                log.info(
                    "queue list [%s] recovered: a worker stayed up %.0fs after %d failed starts; backoff reset",
                    ",".join(identity[0]),
                    self.options.min_uptime,
                    health.failures,
                )
                self.health[identity] = GroupHealth()
                self.roster.touch(identity)  # start the rest of its workers

    def _check_gave_up(self, now: float) -> None:
        limit = self.options.give_up_after
        active = [g for g in self.plan.groups if g.count > 0]
        if not limit or not active:
            return
        since = [self.health.get(g.identity, GroupHealth()).failing_since for g in active]
        if all(s is not None and now - s >= limit for s in since):
            raise PoolExit(EXIT_GAVE_UP, f"every queue list has failed to start for over {limit:.0f}s")

    def _all_up(self) -> bool:
        return self.roster.live >= self.plan.total

    def _stop_worker(self, record: WorkerRecord, why: str) -> None:
        log.info("stopping worker %d [%s]: %s", record.pid, record.group.name, why)
        self.roster.retire(record)
        self._kill(record.pid, signal.SIGQUIT)

    def spawn_worker(self, group: QueueGroup, index: int) -> bool:
        from django_rq_pool.worker.mixin import run_worker

        self._sequence += 1
        name = f"{self.hostname}.{self.pid}.{self._sequence}.{uuid4().hex[:6]}"
        context = WorkerContext(group=group, index=index, name=name, master_pid=self.pid)
        pid = self._fork()
        if pid == 0:
            if self.options.own_process_groups:
                os.setpgid(0, 0)
            run_worker(context, self.options, (*self._wakeup, self._listening[0]), self._listening[1])
        if pid < 0:
            self._record_failure(group, "fork failed")
            return False
        if self.options.own_process_groups:
            with contextlib.suppress(OSError):  # the child already did it, or has already exited
                os.setpgid(pid, pid)
        self.roster.add(WorkerRecord(pid, context, time.monotonic()))
        log.info("spawned worker %d [%s] #%d as %s", pid, group.name, index, name)
        try:
            run_hooks("after_spawn", pid, context)
        except Exception:
            log.exception("after_spawn hook failed for worker %d [%s]; the worker keeps running", pid, group.name)
        return True

    def _fork(self) -> int:
        """fork(), freezing the GC first so children share the master's objects; -1 on failure."""
        if self._frozen:  # not gc.get_freeze_count(): it walks every frozen object
            gc.collect()  # only what is younger than the last fork: don't freeze garbage forever
        gc.freeze()
        self._frozen = True
        # Block signals across fork: a child must never run the master's handlers (a QUIT sent to
        # a worker just forked would land in the child's copy of the signal queue and be lost).
        # enter_child() unblocks them in the child once its own dispositions are set.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            log.error("fork failed: %s", exc)
            return -1
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return pid

    # -- reporting -----------------------------------------------------------------------

    def describe_plan(self) -> str:
        parts = []
        for group in self.plan.groups:
            extra = group.options.describe()
            parts.append(f"[{group.name}]x{group.count}" + (f" ({extra})" if extra else ""))
        return f"{self.plan.total} workers from {self.plan.source}: " + ", ".join(parts)

    def status_line(self) -> str:
        text = f"{self.roster.live}/{0 if self.spawning_paused else self.plan.total} workers"
        backing_off = [
            self.health[g.identity].describe(g.name)
            for g in self.plan.groups
            if g.identity in self.health and self.health[g.identity].failures
        ]
        if backing_off:
            text += f", backing off {'; '.join(backing_off)}"
        if self.reload_error:
            text += ", last reload failed"
        return text

    def update_title(self) -> None:
        """resque-pool's title, listing every worker pid; the list is rebuilt only when it changes."""
        if self._pid_list[0] != self.roster.version:
            self._pid_list = (self.roster.version, ", ".join(str(pid) for pid in self.workers))
        pids = self._pid_list[1]
        title = f"rqpool-master[{self.options.app_name}]: {self.state}: managing [{pids}] ({self.status_line()})"
        if title != self._title:
            self._title = title
            setproctitle(title)

    def _notify(self, message: str) -> None:
        if self.on_status is not None:
            self.on_status(self, message)
