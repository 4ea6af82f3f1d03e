"""The master's end of the control plane: it runs the control child and applies its commands.

The master never talks to Redis. It forks a control child (control/child.py), supervises it
like a worker (restarted with backoff when it dies), and talks to it over one socket pair
(control/protocol.py): worker events go out one message each, the pool's and the lists' state
only when it changed since the last pass (O(lists), never O(workers)), and a full snapshot when
the child starts. Nothing here wakes the master on a timer except a pending restart.

Overrides: a runtime scale is kept here, by queue list, with the count the file gave the list
when the override was set. The child stores them in Redis under the pool's name and hands them
back when it starts. The rule on reload (and at a start): an override whose list still has the
count it had in the file stays; if the file changed that count, the file is the newer intent
and the override is dropped (logged).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from django_rq_pool.config.control import ControlSettings
from django_rq_pool.config.loader import ConfigError
from django_rq_pool.config.plan import PoolPlan, QueueGroup
from django_rq_pool.control import protocol
from django_rq_pool.control.protocol import TO_MASTER, Closed, ProtocolError, Sender
from django_rq_pool.master.autoscaled import AutoscaledCounts

if TYPE_CHECKING:
    from django_rq_pool.master.arbiter import Arbiter
    from django_rq_pool.master.roster import WorkerRecord

log = logging.getLogger(__name__)

RESTART_BASE = 0.5
RESTART_MAX = 30.0
STABLE_AFTER = 10.0  # a control child up this long resets the restart backoff
STOP_WAIT = 3.0  # at the exit, for the child to remove the record
HOLD_AT_START = 1.0  # the first workers wait this long at most for the stored overrides


@dataclass(frozen=True)
class Override:
    count: int
    configured: int  # the list's count in the file when the override was set


def exit_reason(record: WorkerRecord, status: int) -> str:
    """How a worker ended, as the registry counts it (the child refines 'normal')."""
    if record.kill_reason and record.kill_reason.startswith("stuck"):
        return "stuck"
    if os.WIFSIGNALED(status) or record.killed:
        return "killed"
    return "crash" if os.WEXITSTATUS(status) != 0 else "normal"


class ControlLink:
    """Owned by the arbiter; see the module docstring."""

    def __init__(self, settings: ControlSettings):
        self.settings = settings
        self.arbiter: Arbiter | None = None
        self.base: PoolPlan | None = None
        self.overrides: dict[tuple[str, ...], Override] = {}
        self.overrides_loaded = False
        self.autoscaled = AutoscaledCounts()
        self.pid: int | None = None
        self.sock: socket.socket | None = None
        self.sender: Sender | None = None
        self.started = 0.0
        self.failures = 0
        self.restart_at: float | None = None
        self.exits: dict[str, int] = dict.fromkeys(protocol.EXIT_REASONS, 0)
        self.commands = {"applied": 0, "refused": 0}
        self.identity: dict[str, Any] = {}
        self.holding = False  # no worker forked yet: waiting for the stored overrides
        self.hold_until = 0.0
        self._sent_pool: dict[str, Any] | None = None
        self._sent_lists: list[dict[str, Any]] | None = None

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
        self.base = arbiter.plan
        arbiter.roster.observer = self
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
        self.sender = Sender(master_end)
        log.info("control child %d started (registry id %s)", pid, self.identity["id"])
        self.send_snapshot()

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
                self.run_command(message)
            elif message["t"] == "overrides":
                self.load_overrides(message["overrides"])
            elif message["t"] == "resync":
                self.send_snapshot()
            elif message["t"] == "autoscale":
                self.apply_autoscale(message)

    def after_pass(self) -> None:
        """Send the pool's and the lists' state if either changed (a few dicts, O(lists))."""
        arbiter = self.arbiter
        if arbiter is None:
            return
        arbiter.roster.prefer_retire = set()
        if self.holding and time.monotonic() >= self.hold_until:
            self._release_hold(f"not read within {HOLD_AT_START:.0f}s (is Redis down?)")
        if self.restart_at is not None and time.monotonic() >= self.restart_at:
            self.start_child()
        if self.sender is None:
            return
        if self.sender.lost:
            self.send_snapshot()
            return
        pool = self.pool_fields()
        if pool != self._sent_pool:
            self._sent_pool = pool
            self._send({"t": "pool", "pool": pool})
        lists = self.list_fields()
        if lists != self._sent_lists:
            self._sent_lists = lists
            self._send({"t": "lists", "lists": lists})

    def _send(self, message: dict[str, Any]) -> None:
        if self.sender is not None:
            self.sender.send(message)

    def send_snapshot(self) -> None:
        arbiter = self.arbiter
        if self.sender is None or arbiter is None:
            return
        self.sender.lost = False
        self._sent_pool, self._sent_lists = self.pool_fields(), self.list_fields()
        workers = [self._worker(record) for record in arbiter.workers.values()]
        self._send(
            {
                "t": "snapshot",
                "pool": {**self.identity, **self._sent_pool},
                "lists": self._sent_lists,
                "workers": workers,
                "exits": self.exits,
                "commands": self.commands,
            }
        )

    # -- what the master tells the child -------------------------------------------------

    def pool_fields(self) -> dict[str, Any]:
        arbiter = self.arbiter
        assert arbiter is not None
        if arbiter.state.startswith("stopping"):
            state = "stopping"
        elif arbiter.state in ("starting", "reloading"):
            state = arbiter.state
        elif arbiter.paused:
            state = "paused"
        elif any(h.failures for h in arbiter.backoff.health.values()):
            state = "backing-off"
        else:
            state = "running"
        return {"state": state, "source": arbiter.plan.source}

    def list_fields(self) -> list[dict[str, Any]]:
        arbiter = self.arbiter
        assert arbiter is not None and self.base is not None
        configured = {g.queues: g.count for g in self.base.groups}
        now_mono, now = time.monotonic(), time.time()
        lists = []
        for group in arbiter.plan.groups:
            override = self.overrides.get(group.queues)
            health = arbiter.backoff.health.get(group.identity)
            backoff = None
            if health is not None and health.failures:
                until = round(now + max(0.0, health.next_spawn - now_mono))
                backoff = {"until": until, "reason": health.last_reason, "failures": health.failures}
            lists.append(
                {
                    "queues": list(group.queues),
                    "key": group.name,
                    "configured": configured.get(group.queues, 0),
                    "override": override.count if override else None,
                    "override_base": override.configured if override else None,
                    "desired": 0 if arbiter.spawning_paused else group.count,
                    "paused": arbiter.paused,
                    "backoff": backoff,
                    "min": group.autoscale.min if group.autoscale else None,
                    "max": group.max,
                    "scale_down_delay": group.autoscale.scale_down_delay if group.autoscale else None,
                    "max_jobs": group.options.max_jobs,
                    "memory_limit": group.options.memory_limit,
                }
            )
        return lists

    def _worker(self, record: WorkerRecord) -> dict[str, Any]:
        return {
            "pid": record.pid,
            "name": record.context.name,
            "list": record.group.name,
            "started_at": time.time() - (time.monotonic() - record.started),
            "listening": record.listening,
            "stopping": record.stopping,
        }

    # roster observer: one message per event
    def spawned(self, record: WorkerRecord) -> None:
        self._send({"t": "spawn", "worker": self._worker(record)})

    def retired(self, record: WorkerRecord) -> None:
        self._send({"t": "retire", "pid": record.pid})

    def listening(self, record: WorkerRecord) -> None:
        self._send({"t": "listening", "pid": record.pid})

    def worker_exited(self, record: WorkerRecord, status: int) -> None:
        reason = exit_reason(record, status)
        self.exits[reason] += 1
        self._send({"t": "exit", "pid": record.pid, "reason": reason})

    # -- overrides -----------------------------------------------------------------------

    def effective(self) -> PoolPlan:
        """The base plan with the overrides applied (lists added by a scale at the end).

        TTIN/TTOU since the last reload still count for lists that are neither overridden nor autoscaled.
        """
        assert self.base is not None
        resized = self.arbiter.resized if self.arbiter is not None else 0
        groups = []
        for group in self.base.groups:
            override = self.overrides.get(group.queues)
            if override:
                groups.append(replace(group, count=override.count))
            elif group.autoscale is not None:
                groups.append(self.autoscaled.applied(group))
            else:
                groups.append(replace(group, count=max(0, group.count + resized)))
        known = {g.queues for g in self.base.groups}
        groups.extend(QueueGroup(queues, o.count) for queues, o in self.overrides.items() if queues not in known)
        return PoolPlan(tuple(groups), self.base.source)

    def rebase(self, plan: PoolPlan, why: str = "HUP") -> PoolPlan:
        """A new base plan (reload): drop the overrides whose list's file count changed."""
        self.base = plan
        self.autoscaled.rebase(plan.groups)
        configured = {g.queues: g.count for g in plan.groups}
        for queues, override in list(self.overrides.items()):
            now = configured.get(queues, 0)
            if now != override.configured:
                del self.overrides[queues]
                log.info(
                    "%s: [%s] changed in the configuration (%d -> %d): override %d dropped, the file wins",
                    why,
                    ",".join(queues),
                    override.configured,
                    now,
                    override.count,
                )
        return self.effective()

    def load_overrides(self, stored: dict[str, dict[str, int]]) -> None:
        """The overrides stored under the pool's name, once per master (a restart, a hot swap)."""
        from django_rq_pool.control.commands import CommandError, list_key

        arbiter = self.arbiter
        if self.overrides_loaded or arbiter is None:
            return
        self.overrides_loaded = True
        holding, self.holding = self.holding, False
        for key, item in stored.items():
            try:
                queues = tuple(list_key(key).split(","))
            except CommandError as exc:
                log.warning("control: ignoring stored override: %s", exc)
                continue
            refusal = self._check_count(queues, item["count"])
            if refusal:
                log.warning("control: ignoring stored override for [%s]: %s", key, refusal)
                continue
            self.overrides[queues] = Override(item["count"], item["configured"])
        if self.overrides:
            arbiter.plan = self.rebase(arbiter.plan if self.base is None else self.base, "start")
            log.info("control: stored overrides applied: %s", arbiter.describe_plan())
        if self.overrides or holding:
            arbiter.replan()

    def _cap(self, queues: tuple[str, ...]) -> int:
        group = self._group(queues)
        return group.max if group is not None and group.max is not None else self.settings.max_workers

    def _group(self, queues: tuple[str, ...]) -> QueueGroup | None:
        assert self.arbiter is not None
        return next((g for g in self.arbiter.plan.groups if g.queues == queues), None)

    def _check_count(self, queues: tuple[str, ...], count: int) -> str | None:
        """Why this count cannot be set on this list (None: it can)."""
        from django_rq_pool.config.validation import validate_plan

        if count < 0:
            return f"[{','.join(queues)}] cannot go below 0 workers"
        cap = self._cap(queues)
        if count > cap:
            group = self._group(queues)
            which = "its max" if group is not None and group.max is not None else "RQ_POOL_MAX_WORKERS"
            return f"{count} workers for [{','.join(queues)}] is over the cap of {cap} ({which})"
        if self._group(queues) is None:
            try:
                validate_plan(PoolPlan((QueueGroup(queues, count),), "command"))
            except ConfigError as exc:
                return f"[{','.join(queues)}] is not run by this pool and cannot be added: {exc.message}"
        return None

    def apply_autoscale(self, message: dict[str, Any]) -> None:
        """The autoscaler's count for a list (its decision and inputs are in the control child's log)."""
        arbiter = self.arbiter
        assert arbiter is not None
        queues = tuple(message["list"].split(","))
        group = self._group(queues)
        refusal = self.autoscaled.check(group, message["count"], queues in self.overrides)
        if refusal or self._stopping() or arbiter.spawning_paused:
            log.debug("autoscale: [%s] %d ignored: %s", message["list"], message["count"], refusal or "not running")
            return
        assert group is not None
        if group.count == message["count"]:
            return
        log.info("autoscale: [%s] %d -> %d workers", message["list"], group.count, message["count"])
        self.autoscaled.set(queues, message["count"])
        arbiter.plan = self.effective()
        arbiter.roster.prefer_retire = set(message["prefer"])
        arbiter.replan()

    # -- commands ------------------------------------------------------------------------

    def run_command(self, message: dict[str, Any]) -> None:
        command, args = message["command"], message["args"]
        try:
            ok, text, changes = getattr(self, f"_cmd_{command.replace('-', '_')}")(args)
        except Exception as exc:  # a command must never take the master down
            log.exception("control: %s failed", command)
            ok, text, changes = False, f"failed: {type(exc).__name__}: {exc}", {}
        self.commands["applied" if ok else "refused"] += 1
        log.log(
            logging.INFO if ok else logging.WARNING, "control: %s %s: %s", command, "applied" if ok else "refused", text
        )
        self._send({"t": "reply", "id": message["id"], "ok": ok, "message": text, "changes": changes})

    def _stopping(self) -> bool:
        assert self.arbiter is not None
        return self.arbiter.stop_mode is not None

    def _cmd_scale(self, args: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        arbiter = self.arbiter
        assert arbiter is not None and self.base is not None
        if self._stopping():
            return False, "the pool is stopping", {}
        queues = tuple(args["list"].split(","))
        group = self._group(queues)
        current = group.count if group is not None else 0
        count = args["count"] if "count" in args else current + args["delta"]
        refusal = self._check_count(queues, count)
        if refusal:
            return False, refusal, {}
        configured = next((g.count for g in self.base.groups if g.queues == queues), 0)
        self.overrides[queues] = Override(count, configured)
        arbiter.plan = self.effective()
        arbiter.roster.prefer_retire = set(args.get("prefer", ()))
        arbiter.replan()
        text = f"[{args['list']}] {current} -> {count} workers (configured {configured})"
        if group is not None and group.autoscale is not None:
            text += "; autoscaling is suspended for this list until reset"
        return True, text, {"list": args["list"], "from": current, "to": count, "override": count}

    def _cmd_reset(self, args: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        arbiter = self.arbiter
        assert arbiter is not None
        if "list" in args:
            queues = tuple(args["list"].split(","))
            if queues not in self.overrides:
                return True, f"[{args['list']}] has no override", {"reset": []}
            dropped = [queues]
        else:
            dropped = list(self.overrides)
        for queues in dropped:
            del self.overrides[queues]
        arbiter.plan = self.effective()
        arbiter.replan()
        keys = [",".join(q) for q in dropped]
        return True, f"overrides dropped: {', '.join(keys) or 'none'}", {"reset": keys}

    def _cmd_pause(self, args: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        assert self.arbiter is not None
        self.arbiter.handlers.handle_usr2()
        return True, "workers paused (USR2): they finish their current job and take no new one", {"paused": True}

    def _cmd_resume(self, args: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        assert self.arbiter is not None
        self.arbiter.handlers.handle_cont()
        return True, "workers resumed (CONT)", {"paused": False}

    def _cmd_reload(self, args: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        arbiter = self.arbiter
        assert arbiter is not None
        if self._stopping():
            return False, "the pool is stopping", {}
        if arbiter.reload_plan is None:
            return False, f"configuration comes from {arbiter.plan.source}; nothing to reload", {}
        arbiter.handlers.handle_hup()
        if arbiter.reload_error:
            return False, f"reload failed, keeping the last good configuration: {arbiter.reload_error}", {}
        return True, f"reloaded: {arbiter.describe_plan()}", {}

    def _cmd_stop_workers(self, args: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        assert self.arbiter is not None
        if self._stopping():
            return False, "the pool is stopping", {}
        self.arbiter.handlers.handle_winch()
        return True, "stopping every worker (WINCH); reload or HUP starts them again", {}

    def _cmd_quit(self, args: dict[str, Any]) -> tuple[bool, str, dict[str, Any]]:
        assert self.arbiter is not None
        if self._stopping():
            return False, "the pool is already stopping", {}
        self.arbiter.handlers.handle_quit()
        return True, "graceful stop (QUIT): workers finish their jobs, then the pool exits", {}
