"""The master's record of the counts the autoscaler asked for (docs/autoscaling.md).

A count from the autoscaler is a separate kind of desired count: the configured count is where an
autoscaled list starts, the autoscaler moves it within ``[min, max]``, and an operator's override
(a ``scale`` command) pins the list and wins until ``reset``, after which the autoscaler takes over
again from the pinned count. A reload keeps each list's autoscaled count, clamped to its new
bounds, and forgets the lists that are no longer autoscaled.
"""

from __future__ import annotations

from dataclasses import replace

from django_rq_pool.config.plan import QueueGroup


class AutoscaledCounts:
    """Counts by queue list, kept only for autoscaled lists and within their bounds."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, ...], int] = {}

    def check(self, group: QueueGroup | None, count: int, pinned: bool) -> str | None:
        """Why the autoscaler may not set this count now (None: it may)."""
        if group is None or group.autoscale is None:
            return "the list is not autoscaled (any more)"
        if pinned:
            return "an override pins the list"
        if not group.autoscale.min <= count <= group.autoscale.max:
            return f"{count} is outside {group.autoscale.min}..{group.autoscale.max}"
        return None

    def set(self, queues: tuple[str, ...], count: int) -> None:
        self.counts[queues] = count

    def applied(self, group: QueueGroup) -> QueueGroup:
        """The group with its autoscaled count, if it has one."""
        count = self.counts.get(group.queues)
        if count is None or group.autoscale is None:
            return group
        return replace(group, count=min(max(count, group.autoscale.min), group.autoscale.max))

    def rebase(self, groups: tuple[QueueGroup, ...]) -> None:
        """After a reload: keep the counts of lists still autoscaled (clamped when applied)."""
        autoscaled = {g.queues for g in groups if g.autoscale is not None}
        self.counts = {queues: count for queues, count in self.counts.items() if queues in autoscaled}
