"""What the master tells its control child: worker events, changed state, and snapshots.

Worker events go out one message each (this is the roster's observer); the pool's and the lists'
state only when it changed since the last pass (O(lists), never O(workers)); a full snapshot when
the child starts, or when a message was lost.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from django_rq_pool.control import protocol
from django_rq_pool.control.protocol import Sender
from django_rq_pool.master.overrides import OverrideBook

if TYPE_CHECKING:
    from django_rq_pool.master.arbiter import Arbiter
    from django_rq_pool.master.roster import WorkerRecord


def exit_reason(record: WorkerRecord, status: int) -> str:
    """How a worker ended, as the registry counts it (the child refines 'normal')."""
    if record.kill_reason and record.kill_reason.startswith("stuck"):
        return "stuck"
    if os.WIFSIGNALED(status) or record.killed:
        return "killed"
    return "crash" if os.WEXITSTATUS(status) != 0 else "normal"


class ControlFeed:
    """The messages to the control child, and the counts that outlive a restart of the child."""

    def __init__(self, arbiter: Arbiter, book: OverrideBook, identity: dict[str, Any]):
        self.arbiter = arbiter
        self.book = book
        self.identity = identity
        self.sender: Sender | None = None  # the current child's pipe
        self.exits: dict[str, int] = dict.fromkeys(protocol.EXIT_REASONS, 0)
        self.commands = {"applied": 0, "refused": 0}
        self._sent_pool: dict[str, Any] | None = None
        self._sent_lists: list[dict[str, Any]] | None = None

    def send(self, message: dict[str, Any]) -> None:
        if self.sender is not None:
            self.sender.send(message)

    def send_changes(self) -> None:
        """Send the pool's and the lists' state if either changed (a few dicts, O(lists))."""
        if self.sender is None:
            return
        if self.sender.lost:
            self.send_snapshot()
            return
        pool = self.pool_fields()
        if pool != self._sent_pool:
            self._sent_pool = pool
            self.send({"t": "pool", "pool": pool})
        lists = self.list_fields()
        if lists != self._sent_lists:
            self._sent_lists = lists
            self.send({"t": "lists", "lists": lists})

    def send_snapshot(self) -> None:
        if self.sender is None:
            return
        self.sender.lost = False
        self._sent_pool, self._sent_lists = self.pool_fields(), self.list_fields()
        workers = [self._worker(record) for record in self.arbiter.workers.values()]
        self.send(
            {
                "t": "snapshot",
                "pool": {**self.identity, **self._sent_pool},
                "lists": self._sent_lists,
                "workers": workers,
                "exits": self.exits,
                "commands": self.commands,
            }
        )

    def pool_fields(self) -> dict[str, Any]:
        arbiter = self.arbiter
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
        assert self.book.base is not None
        configured = {g.queues: g.count for g in self.book.base.groups}
        now_mono, now = time.monotonic(), time.time()
        lists = []
        for group in arbiter.plan.groups:
            override = self.book.overrides.get(group.queues)
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
        self.send({"t": "spawn", "worker": self._worker(record)})

    def retired(self, record: WorkerRecord) -> None:
        self.send({"t": "retire", "pid": record.pid})

    def listening(self, record: WorkerRecord) -> None:
        self.send({"t": "listening", "pid": record.pid})

    def worker_exited(self, record: WorkerRecord, status: int) -> None:
        reason = exit_reason(record, status)
        self.exits[reason] += 1
        self.send({"t": "exit", "pid": record.pid, "reason": reason})
