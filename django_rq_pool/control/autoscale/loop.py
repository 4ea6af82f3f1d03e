"""The autoscaler inside the control child: read, decide, ask the master.

Every ``ACTIVE_INTERVAL`` (while a list has work or more workers than its ``min``), or
``IDLE_INTERVAL`` (otherwise), it reads, in one pipeline per Redis, the length of each autoscaled
list's queues and the rq state of its workers (not for a list at its ``min`` that had no work at
the last read: there only a backlog can change the count). A quiet single-queue list is waited on
instead (:mod:`.waker`): its first job starts a round at once, so while every list is quiet and
waited on a round runs only every ``WAITED_INTERVAL``. When a list has work it also reads the
other pools' records from the registry (at most every ``PEERS_EVERY``) and, with a memory budget,
the pool's PSS (at most every ``MEMORY_EVERY``). Each list's :class:`ListScaler` decides, and a new count goes to
the master as an ``autoscale`` message, the same path as a ``scale`` command but a separate kind
of count, so an operator's override always wins and is told apart. Every change of count and every
scale-up held back by memory is logged with its inputs.

It only runs while the pool is running (not paused, reloading or stopping) and Redis answers: any
Redis error leaves every count where it is until the next read succeeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from django_rq_pool.config.plan import Autoscale
from django_rq_pool.control.autoscale.decision import Inputs, ListScaler
from django_rq_pool.control.autoscale.memory import pool_pss
from django_rq_pool.control.autoscale.sharing import Member
from django_rq_pool.control.autoscale.waker import Waker

log = logging.getLogger("django_rq_pool.control.autoscale")

ACTIVE_INTERVAL = 0.1
IDLE_INTERVAL = 0.25
WAITED_INTERVAL = 1.0  # every list quiet and waited on: a round only as a safety net (and for new lists)
PEERS_EVERY = 0.25  # while a list has work: the others' records change within about 0.1 s of a decision
MEMORY_EVERY = 1.0
PENDING_TIMEOUT = 1.0  # a count sent but not yet reflected by the master is not decided on again before this
RUNNING_STATES = ("running", "backing-off")
BUSY = b"busy"  # rq's "started" is a worker starting up (WorkerStatus.STARTED), not one running a job


@dataclass
class Reading:
    """One list's figures from one read."""

    key: str
    backlog: int
    busy: int
    idle_pids: list[int]


def autoscaled_lists(view_lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lists the autoscaler steers: autoscaled in the config and not pinned by an override."""
    return [item for item in view_lists if item.get("min") is not None and item.get("override") is None]


def bounds_of(item: dict[str, Any]) -> Autoscale:
    return Autoscale(item["min"], item["max"], item["scale_down_delay"])


def peers_from(status: dict[str, Any], own_id: str) -> dict[str, list[Member]]:
    """Per list key, the other live pools serving it (a fixed or pinned list counts as min = max)."""
    peers: dict[str, list[Member]] = {}
    for pool in status.get("pools", []):
        if pool.get("id") == own_id or pool.get("state") == "stopping":
            continue
        for item in pool.get("lists", []):
            try:
                if item.get("min") is not None and item.get("override") is None:
                    low, high = int(item["min"]), int(item["max"])
                else:
                    low = high = int(item["desired"])
                member = Member(str(pool["id"]), int(item.get("busy") or 0), low, high, int(item.get("desired") or 0))
            except (KeyError, TypeError, ValueError):
                continue
            peers.setdefault(str(item.get("key")), []).append(member)
    return peers


class Autoscaler:
    """The control child's autoscaling state; see the module docstring."""

    def __init__(self, max_memory: int | None, read_status: Callable[[redis.Redis], dict[str, Any]]):
        self.max_memory = max_memory
        self.read_status = read_status
        self.scalers: dict[str, ListScaler] = {}
        self.pending: dict[str, tuple[int, float]] = {}  # key -> (count sent, when)
        self.held: set[str] = set()  # lists whose scale-up memory holds back (logged once per hold)
        self.hot: set[str] = set()  # lists that had work at the last read: their workers' states are read too
        self.next_run = 0.0
        self.peers: dict[str, list[Member]] = {}
        self.peers_at = float("-inf")
        self.memory: int | None = None
        self.memory_at = float("-inf")
        self.waker = Waker()

    def due(self, view: Any) -> float | None:
        """When to run next (monotonic), or None while there is nothing to steer."""
        if view.pool.get("state") not in RUNNING_STATES or not autoscaled_lists(view.lists):
            return None
        return self.next_run

    def run(
        self,
        view: Any,
        connection_for: Callable[[str], redis.Redis],
        registry: redis.Redis,
        uss_of: Callable[[int], int | None],
    ) -> list[dict[str, Any]]:
        """One round: the ``autoscale`` messages for the master (Redis errors propagate)."""
        now = time.monotonic()
        items = autoscaled_lists(view.lists)
        readings = self._read(items, view.workers, connection_for)
        busy_lists = [r for r in readings.values() if r.backlog + r.busy > 0]
        self.hot = {r.key for r in busy_lists}
        if busy_lists and now - self.peers_at >= PEERS_EVERY:
            self.peers = peers_from(self.read_status(registry), str(view.pool.get("id", "")))
            self.peers_at = now
        rising = any(r.backlog + r.busy > item["desired"] for item in items if (r := readings.get(item["key"])))
        if self.max_memory is not None and rising and now - self.memory_at >= MEMORY_EVERY:
            self.memory = pool_pss(int(view.pool["pid"]))
            self.memory_at = now
        messages = []
        quiet: dict[str, str] = {}  # single-queue lists at their min with no work: a wait wakes them
        active = False
        for item in items:
            reading = readings[item["key"]]
            message = self._decide(item, reading, view, uss_of, now)
            if message is not None:
                messages.append(message)
            if reading.backlog + reading.busy > 0 or item["desired"] > item["min"] or message is not None:
                active = True
            elif len(item["queues"]) == 1:
                quiet[item["key"]] = item["queues"][0]
        self.waker.keep(quiet, [item["key"] for item in items], connection_for)
        if active:
            self.next_run = now + ACTIVE_INTERVAL
        elif all(self.waker.covers(item["key"]) for item in items):
            self.next_run = now + WAITED_INTERVAL  # a job wakes the round through its list's wait
        else:
            self.next_run = now + IDLE_INTERVAL
        for key in set(self.scalers) - {item["key"] for item in items}:
            del self.scalers[key]  # a list gone, pinned or no longer autoscaled starts afresh if it returns
        return messages

    def sockets(self) -> list[Any]:
        """The pending waits' sockets, for the control child's select."""
        return self.waker.sockets()

    def woken(self, readable: list[Any]) -> None:
        """After select: a wait that saw a job makes the next round due at once."""
        if self.waker.woken(readable):
            self.next_run = 0.0

    def _read(
        self,
        items: list[dict[str, Any]],
        workers: dict[int, dict[str, Any]],
        connection_for: Callable[[str], redis.Redis],
    ) -> dict[str, Reading]:
        """Backlog and busy workers of each list: one pipeline per Redis connection."""
        batches: dict[int, tuple[redis.Redis, list[tuple[str, str, Any]]]] = {}
        for item in items:
            connection = connection_for(item["queues"][0])
            batch = batches.setdefault(id(connection), (connection, []))[1]
            batch.extend((item["key"], "queue", name) for name in item["queues"])
            if item["desired"] <= item["min"] and item["key"] not in self.hot:
                continue  # at its floor and quiet: only a backlog can change its count, so skip the states
            for pid, worker in workers.items():
                if worker["list"] == item["key"] and not worker.get("stopping"):
                    batch.append((item["key"], "worker", (pid, worker["name"])))
        readings = {item["key"]: Reading(item["key"], 0, 0, []) for item in items}
        for connection, batch in batches.values():
            pipe = connection.pipeline(transaction=False)
            for _, kind, what in batch:
                if kind == "queue":
                    pipe.llen(f"rq:queue:{what}")
                else:
                    pipe.hget(f"rq:worker:{what[1]}", "state")
            for (key, kind, what), answer in zip(batch, pipe.execute(), strict=True):
                reading = readings[key]
                if kind == "queue":
                    reading.backlog += int(answer or 0)
                elif answer == BUSY:
                    reading.busy += 1
                elif answer is not None:
                    reading.idle_pids.append(what[0])
        return readings

    def _decide(
        self, item: dict[str, Any], reading: Reading, view: Any, uss_of: Callable[[int], int | None], now: float
    ) -> dict[str, Any] | None:
        key, current = item["key"], int(item["desired"])
        sent = self.pending.get(key)
        if sent is not None:
            if sent[0] != current and now - sent[1] < PENDING_TIMEOUT:
                return None  # the master has not taken the last count yet
            del self.pending[key]
        bounds = bounds_of(item)
        scaler = self.scalers.get(key)
        if scaler is None or scaler.bounds != bounds:
            scaler = self.scalers[key] = ListScaler(bounds)
        uss = [u for pid, w in view.workers.items() if w["list"] == key and (u := uss_of(pid))]
        decision = scaler.decide(
            Inputs(
                backlog=reading.backlog,
                busy=reading.busy,
                current=current,
                pool_id=str(view.pool.get("id", "")),
                peers=tuple(self.peers.get(key, ())) if reading.backlog + reading.busy else (),
                memory_used=self.memory if self.max_memory is not None else None,
                memory_budget=self.max_memory,
                worker_memory=sum(uss) // len(uss) if uss else None,
            ),
            now,
        )
        changed = decision.desired != current
        if changed or (decision.held_by_memory and key not in self.held):
            log.info("autoscale [%s] %s", key, decision.reason)
        self.held = (self.held | {key}) if decision.held_by_memory else (self.held - {key})
        if not changed:
            return None
        self.pending[key] = (decision.desired, now)
        prefer = reading.idle_pids if decision.desired < current else []
        return {"t": "autoscale", "list": key, "count": decision.desired, "prefer": prefer}
