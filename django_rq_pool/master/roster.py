"""The master's bookkeeping of its workers: who runs, and who holds which slot of which list.

A queue list with ``count: 3`` has slots 0, 1 and 2. A worker holds its slot from its fork until
it exits or is told to stop (its replacement may then start while it finishes its job). Every
change costs O(1) in the number of workers and names the list it touched, so the master's loop
looks at that list only: replacing a dead worker costs the same at 64 workers as at 1.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from django_rq_pool.common.lineage import Lineage
from django_rq_pool.config.plan import QueueGroup
from django_rq_pool.hooks import WorkerContext

Identity = tuple


@dataclass
class WorkerRecord:
    """A forked worker as the master knows it."""

    pid: int
    context: WorkerContext
    started: float
    stopping: bool = False
    killed: bool = False  # SIGKILLed by the master when it ignored a stop
    kill_reason: str | None = None  # why the master killed it (stuck), for the janitor's job failure
    listening: bool = False  # it said it has registered with Redis and dequeues (readiness.py)
    lineage: Lineage | None = None  # its job child and scheduler, written by the worker (lineage.py)

    @property
    def group(self) -> QueueGroup:
        return self.context.group


class RosterObserver(Protocol):
    """Told of each worker event, one call each (the control plane's feed to its child)."""

    def spawned(self, record: WorkerRecord) -> None: ...
    def retired(self, record: WorkerRecord) -> None: ...
    def listening(self, record: WorkerRecord) -> None: ...


class Roster:
    """Every unreaped worker by pid, and the live ones by slot."""

    def __init__(self) -> None:
        self.records: dict[int, WorkerRecord] = {}  # stopping workers included, until reaped
        self.live = 0  # workers holding a slot
        self.listening = 0  # of those, the ones that said they are listening
        self.version = 0  # bumped whenever ``records`` gains or loses a pid
        self._held: dict[Identity, dict[int, WorkerRecord]] = {}
        self._vacant: dict[Identity, set[int]] = {}
        self._counts: dict[Identity, int] = {}
        self._changed: set[Identity] = set()
        self.observer: RosterObserver | None = None  # control_feed.py
        self.prefer_retire: set[int] = set()  # pids to stop first when a list shrinks (idle ones)

    def plan(self, groups: Iterable[QueueGroup]) -> None:
        """Take new counts (start, reload, TTIN/TTOU, WINCH): every list is looked at again."""
        self._counts = {group.identity: group.count for group in groups}
        for identity in self._held.keys() | self._counts.keys():
            held = self._held.setdefault(identity, {})
            if not held and identity not in self._counts:  # a list gone from the plan, its workers too
                del self._held[identity], self._vacant[identity]
                continue
            self._vacant[identity] = {i for i in range(self._counts.get(identity, 0)) if i not in held}
            self._changed.add(identity)

    def add(self, record: WorkerRecord) -> None:
        identity, index = record.group.identity, record.context.index
        self._held.setdefault(identity, {})[index] = record
        self._vacant.setdefault(identity, set()).discard(index)
        self.records[record.pid] = record
        self.live += 1
        self.version += 1
        if self.observer is not None:
            self.observer.spawned(record)

    def remove(self, pid: int) -> WorkerRecord | None:
        """A reaped pid: its record, if it was a worker (its slot is free again)."""
        record = self.records.pop(pid, None)
        if record is not None:
            self.version += 1
            self._release(record)
        return record

    def retire(self, record: WorkerRecord) -> None:
        """Told to stop: it keeps running until reaped, but no longer holds its slot."""
        if not record.stopping:
            record.stopping = True
            self._release(record)
            if self.observer is not None:
                self.observer.retired(record)

    def mark_listening(self, pid: int) -> None:
        record = self.records.get(pid)
        if record is not None and not record.stopping and not record.listening:
            record.listening = True
            self.listening += 1
            if self.observer is not None:
                self.observer.listening(record)

    def _release(self, record: WorkerRecord) -> None:
        identity, index = record.group.identity, record.context.index
        held = self._held.get(identity, {})
        if held.get(index) is not record:
            return  # already released (it was told to stop before it exited)
        del held[index]
        self.live -= 1
        self.listening -= record.listening
        if index < self._counts.get(identity, 0):
            self._vacant[identity].add(index)
        self._changed.add(identity)

    def touch(self, identity: Identity) -> None:
        """Look at this list again on the next pass (its backoff ended, it recovered)."""
        self._changed.add(identity)

    def take_changed(self) -> set[Identity]:
        changed, self._changed = self._changed, set()
        return changed

    def holders(self, identity: Identity) -> list[WorkerRecord]:
        return list(self._held.get(identity, {}).values())

    def surplus(self, identity: Identity) -> list[WorkerRecord]:
        """The workers above the list's count (TTOU, a smaller count, a scale-down).

        Preferred ones first (a scale command names the list's idle workers), then those in the
        highest slots: the workers left keep low slots, so a later TTIN or reload fills the slots
        just above them and ``{index}`` names stay in that range.
        """
        held = self._held.get(identity, {})
        extra = len(held) - self._counts.get(identity, 0)
        if extra <= 0:
            return []
        ranked = sorted(held, key=lambda index: (held[index].pid not in self.prefer_retire, -index))
        return [held[index] for index in ranked[:extra]]

    def missing(self, identity: Identity) -> list[int]:
        """Free slots to fill, lowest first."""
        need = self._counts.get(identity, 0) - len(self._held.get(identity, {}))
        return heapq.nsmallest(need, self._vacant.get(identity, ())) if need > 0 else []
