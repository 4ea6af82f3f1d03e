"""Sharing one list's need among every pool that serves it, so that they do not all jump to ``max``.

Each pool computes the split from the backlog it reads from Redis and the registry's records of
the others, so without talking to each other they agree, closely, on who starts what.

The split, per list: the **need** is the jobs waiting plus the jobs running (``backlog + busy``
summed over the pools). Each pool first keeps its floor, ``clamp(busy, min, max)``: its busy
workers and its configured minimum, which take jobs too. The other pools' floors also count the
workers they already asked for (``desired``, from their records): started or starting, those take
jobs as well. What is left of the need is then poured evenly into the pools that still have room
below their ``max`` (water-filling); a remainder of one job goes to the pools in the order of their
ids. A pool counts itself by its busy workers only, so its share can fall when the need does.

With fresh records the shares add up to at most the need (each pool counts the others' idle
workers as capacity, and its own as none) or the sum of the floors; a record is up to a fraction
of a second old, so under a spike the total stays within the need plus about one worker per pool.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    """One pool serving the list: its id, busy workers and bounds (a fixed list has min = max = count).

    ``desired`` is the count another pool already asked for (0 for the deciding pool itself).
    """

    pool_id: str
    busy: int
    min: int
    max: int
    desired: int = 0

    @property
    def floor(self) -> int:
        return min(max(self.busy, self.desired, self.min), self.max)


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
