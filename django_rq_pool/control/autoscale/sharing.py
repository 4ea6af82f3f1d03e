"""Sharing one list's need among every pool that serves it, so that they do not all jump to ``max``.

Each pool computes the same split from the same inputs (the backlog it reads from Redis and the
registry's records of the others), so without talking to each other they agree on who starts what.

The split, per list: the **need** is the jobs waiting plus the jobs running (``backlog + busy``
summed over the pools). Each pool first keeps ``clamp(busy, min, max)`` workers: its busy ones and
its configured floor, which take jobs too. What is left of the need is then poured evenly into the
pools that still have room below their ``max`` (water-filling); a remainder of one job goes to
the pools in the order of their ids. When every pool sees the same inputs the shares add up to
``max(need, sum of the floors)``, capped by the sum of the ``max`` es.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    """One pool serving the list: its id, busy workers and bounds (a fixed list has min = max = count)."""

    pool_id: str
    busy: int
    min: int
    max: int

    @property
    def floor(self) -> int:
        return min(max(self.busy, self.min), self.max)


def split(need: int, members: list[Member]) -> dict[str, int]:
    """Each pool's share of ``need`` workers; never below its floor nor above its ``max``."""
    ordered = sorted(members, key=lambda m: m.pool_id)
    shares = {m.pool_id: m.floor for m in ordered}
    left = need - sum(shares.values())
    while left > 0:
        open_ = [m for m in ordered if shares[m.pool_id] < m.max]
        if not open_:
            break
        each, extra = divmod(left, len(open_))
        for rank, member in enumerate(open_):
            give = min(each + (1 if rank < extra else 0), member.max - shares[member.pool_id])
            shares[member.pool_id] += give
            left -= give
    return shares
