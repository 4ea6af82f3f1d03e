"""The crash-loop policy: when a queue list keeps failing to start, back off; when it recovers, reset.

A worker that dies within ``min_uptime`` of its fork (or a fork that fails) is a failed start.
Each failed start doubles the list's wait before the next one (capped at ``backoff_max``, with
+-25% jitter so lists failing together, Redis down, spread out); while backing off the list is
probed with one worker at a time. A worker that stays up ``min_uptime`` resets the list. With
``give_up_after``, a pool whose every list has been failing that long exits (status 3).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django_rq_pool.config.options import PoolOptions
from django_rq_pool.config.plan import QueueGroup
from django_rq_pool.master.roster import Identity, Roster

log = logging.getLogger(__name__)

BACKOFF_BASE = 1.0


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


class Backoff:
    """The health of every list that ever failed, and what it allows."""

    def __init__(self, options: PoolOptions, roster: Roster):
        self.options = options
        self.roster = roster
        self.health: dict[Identity, GroupHealth] = {}

    def record_failure(self, group: QueueGroup, reason: str) -> None:
        health = self.health.setdefault(group.identity, GroupHealth())
        health.failures += 1
        health.last_reason = reason
        now = time.monotonic()
        if health.failing_since is None:
            health.failing_since = now
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

    def review(self, now: float) -> None:
        """Have the roster look again at lists whose backoff ended or that recovered."""
        for identity, health in self.health.items():  # one entry per list that ever failed
            if 0 < health.next_spawn <= now:
                self.roster.touch(identity)
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

    def allowed(self, group: QueueGroup, free: list[int], now: float) -> list[int]:
        """The free slots that may be filled now: none while waiting, one at a time while failing."""
        health = self.health.get(group.identity)
        if health is None or not health.failures:
            return free
        if now < health.next_spawn:
            return []
        health.next_spawn = now + self.options.backoff_max
        return free[:1]  # while backing off, probe with one worker at a time

    def gave_up(self, groups: Iterable[QueueGroup], now: float) -> bool:
        """With give_up_after: every list has been failing to start for that long."""
        limit = self.options.give_up_after
        active = [g for g in groups if g.count > 0]
        if not limit or not active:
            return False
        since = [self.health.get(g.identity, GroupHealth()).failing_since for g in active]
        return all(s is not None and now - s >= limit for s in since)

    def last_reasons(self, groups: Iterable[QueueGroup]) -> str:
        """Why each failing list's last start failed, for the give-up line: ``[foo] reason; [bar] reason``."""
        return "; ".join(
            f"[{g.name}] {self.health[g.identity].last_reason}" for g in groups if self._failing(g.identity)
        )

    def deadline(self, now: float) -> float | None:
        """When a backoff ends, or a failing list's oldest worker reaches min_uptime (it recovers)."""
        times = [h.next_spawn for h in self.health.values()]
        for identity, health in self.health.items():
            starts = [r.started for r in self.roster.holders(identity)] if health.failures else []
            if starts:
                times.append(min(starts) + self.options.min_uptime)
        upcoming = [t for t in times if t > now]
        return min(upcoming) if upcoming else None

    def describe(self, groups: Iterable[QueueGroup]) -> list[str]:
        """The lists backing off, for the title and status."""
        return [self.health[g.identity].describe(g.name) for g in groups if self._failing(g.identity)]

    def _failing(self, identity: Identity) -> bool:
        health = self.health.get(identity)
        return health is not None and health.failures > 0
