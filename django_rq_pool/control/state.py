"""The control child's picture of its pool, kept from the master's messages (see protocol.py).

The record it builds is the pool entry of the registry document (docs/control.md). Worker
details the master does not know (rq's state, the current job, jobs done, USS) come from
:class:`Details`, read by the control child at each heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django_rq_pool.control.protocol import EXIT_REASONS

PUBLIC_LIST_FIELDS = (
    "queues",
    "key",
    "configured",
    "override",
    "desired",
    "paused",
    "backoff",
    "min",
    "max",
)


@dataclass
class Details:
    """What the control child read about one worker."""

    state: str | None = None  # rq's: idle, busy, started, suspended
    job_id: str | None = None
    jobs_done: int = 0
    uss: int | None = None


class PoolView:
    """The pool as the master last described it."""

    def __init__(self) -> None:
        self.pool: dict[str, Any] = {}
        self.lists: list[dict[str, Any]] = []
        self.workers: dict[int, dict[str, Any]] = {}  # pid -> name, pid, list, started_at, listening, stopping
        self.exits = dict.fromkeys(EXIT_REASONS, 0)
        self.commands = {"applied": 0, "refused": 0}
        self.seq = 0
        self.gap = False  # a message was lost: ask for a snapshot

    def apply(self, message: dict[str, Any]) -> None:
        """Take one message from the master."""
        seq = message.get("seq", 0)
        kind = message["t"]
        if kind != "snapshot" and seq != self.seq + 1:
            self.gap = True
        self.seq = seq
        if kind == "snapshot":
            self.gap = False
            self.pool = dict(message["pool"])
            self.lists = list(message["lists"])
            self.workers = {w["pid"]: dict(w) for w in message["workers"]}
            self.exits.update(message.get("exits", {}))
            self.commands.update(message.get("commands", {}))
        elif kind == "pool":
            self.pool.update(message["pool"])
        elif kind == "lists":
            self.lists = list(message["lists"])
        elif kind == "spawn":
            worker = dict(message["worker"])
            self.workers[worker["pid"]] = worker
        elif kind == "listening" and message["pid"] in self.workers:
            self.workers[message["pid"]]["listening"] = True
        elif kind == "retire" and message["pid"] in self.workers:
            self.workers[message["pid"]]["stopping"] = True
        elif kind == "exit":
            self.workers.pop(message["pid"], None)
            reason = message.get("reason")
            if reason in self.exits:
                self.exits[reason] += 1
        elif kind == "reply":
            self.commands["applied" if message.get("ok") else "refused"] += 1

    @property
    def pool_id(self) -> str:
        return str(self.pool.get("id", ""))

    def list_options(self, key: str) -> dict[str, Any]:
        return next((item for item in self.lists if item["key"] == key), {})

    def exit_reason(self, message: dict[str, Any], details: Details | None, uss: int | None) -> str:
        """A clean exit refined by what the child knew: the worker retired at max_jobs or memory_limit."""
        reason = message.get("reason", "normal")
        worker = self.workers.get(message["pid"])
        if reason != "normal" or worker is None or worker.get("stopping"):
            return reason
        options = self.list_options(worker["list"])
        if details is not None and options.get("max_jobs") and details.jobs_done >= options["max_jobs"]:
            return "max_jobs"
        if uss is not None and options.get("memory_limit") and uss > options["memory_limit"]:
            return "memory"
        return reason

    def overrides(self) -> dict[str, dict[str, int]]:
        """The overrides to store, as the master holds them."""
        return {
            item["key"]: {"count": item["override"], "configured": item["override_base"]}
            for item in self.lists
            if item.get("override") is not None
        }

    def document(self, details: dict[int, Details], now: float) -> dict[str, Any]:
        """The pool's record (docs/control.md)."""
        workers = []
        for pid, worker in sorted(self.workers.items()):
            info = details.get(pid, Details())
            workers.append(
                {
                    "name": worker["name"],
                    "pid": pid,
                    "list": worker["list"],
                    "state": self._worker_state(worker, info),
                    "job_id": info.job_id,
                    "jobs_done": info.jobs_done,
                    "started_at": worker["started_at"],
                    "uss": info.uss,
                }
            )
        lists = []
        for item in self.lists:
            mine = [w for w in workers if w["list"] == item["key"] and w["state"] != "stopping"]
            busy = sum(w["state"] == "busy" for w in mine)
            entry = {name: item.get(name) for name in PUBLIC_LIST_FIELDS}
            entry.update(running=len(mine), busy=busy, idle=len(mine) - busy)
            lists.append(entry)
        return {
            **self.pool,
            "heartbeat_at": now,
            "lists": lists,
            "workers": workers,
            "exits": dict(self.exits),
            "commands": dict(self.commands),
        }

    def _worker_state(self, worker: dict[str, Any], info: Details) -> str:
        if worker.get("stopping"):
            return "stopping"
        if info.state == "busy":
            return "busy"
        if not worker.get("listening") and info.state in (None, "started"):  # rq's "started": born, not yet listening
            return "starting"
        if info.state == "suspended" or self.list_options(worker["list"]).get("paused"):
            return "paused"
        return "idle"
