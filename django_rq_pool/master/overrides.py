"""The runtime overrides of queue lists' counts, and the plan they make with the file's.

A runtime scale is kept here, by queue list, with the count the file gave the list when the
override was set. The control child stores them in Redis under the pool's name and hands them
back when it starts. The rule on reload (and at a start): an override whose list still has the
count it had in the file stays; if the file changed that count, the file is the newer intent
and the override is dropped (logged). Autoscaled counts (autoscaled.py) sit under the overrides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from django_rq_pool.config.loader import ConfigError
from django_rq_pool.config.plan import PoolPlan, QueueGroup
from django_rq_pool.master.autoscaled import AutoscaledCounts

log = logging.getLogger("django_rq_pool.master.control_link")  # one logger for the control link

Queues = tuple[str, ...]


@dataclass(frozen=True)
class Override:
    count: int
    configured: int  # the list's count in the file when the override was set


def group_of(plan: PoolPlan, queues: Queues) -> QueueGroup | None:
    return next((g for g in plan.groups if g.queues == queues), None)


class OverrideBook:
    """The file's plan (the base), with the overrides and the autoscaled counts on top of it."""

    def __init__(self, max_workers: int):
        self.max_workers = max_workers  # RQ_POOL_MAX_WORKERS: the cap of a list without its own max
        self.base: PoolPlan | None = None
        self.overrides: dict[Queues, Override] = {}
        self.loaded = False  # the stored overrides were taken (once per master)
        self.autoscaled = AutoscaledCounts()

    def effective(self, resized: int) -> PoolPlan:
        """The base plan with the overrides applied (lists added by a scale at the end).

        TTIN/TTOU since the last reload (``resized``) still count for lists that are neither
        overridden nor autoscaled.
        """
        assert self.base is not None
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

    def rebase(self, plan: PoolPlan, resized: int, why: str = "HUP") -> PoolPlan:
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
        return self.effective(resized)

    def configured(self, queues: Queues) -> int:
        """The list's count in the file (0 for a list only a scale added)."""
        assert self.base is not None
        return next((g.count for g in self.base.groups if g.queues == queues), 0)

    def take_stored(self, stored: dict[str, dict[str, int]], plan: PoolPlan) -> None:
        """The overrides stored under the pool's name; a bad one is logged and left out."""
        from django_rq_pool.control.commands import CommandError, list_key

        self.loaded = True
        for key, item in stored.items():
            try:
                queues = tuple(list_key(key).split(","))
            except CommandError as exc:
                log.warning("control: ignoring stored override: %s", exc)
                continue
            refusal = self.check_count(plan, queues, item["count"])
            if refusal:
                log.warning("control: ignoring stored override for [%s]: %s", key, refusal)
                continue
            self.overrides[queues] = Override(item["count"], item["configured"])

    def check_count(self, plan: PoolPlan, queues: Queues, count: int) -> str | None:
        """Why this count cannot be set on this list (None: it can)."""
        from django_rq_pool.config.validation import validate_plan

        if count < 0:
            return f"[{','.join(queues)}] cannot go below 0 workers"
        group = group_of(plan, queues)
        own_max = group is not None and group.max is not None
        cap = group.max if group is not None and group.max is not None else self.max_workers
        if count > cap:
            which = "its max" if own_max else "RQ_POOL_MAX_WORKERS"
            return f"{count} workers for [{','.join(queues)}] is over the cap of {cap} ({which})"
        if group is None:
            try:
                validate_plan(PoolPlan((QueueGroup(queues, count),), "command"))
            except ConfigError as exc:
                return f"[{','.join(queues)}] is not run by this pool and cannot be added: {exc.message}"
        return None
