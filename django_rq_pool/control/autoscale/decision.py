"""One autoscaled list's desired count, from its backlog, busy workers, peers and the memory budget.

``desired = max(busy, min, memory_limited(window_max(clamp(share, min, max))))`` where

* ``need = backlog + busy`` over every pool serving the list, and ``share`` is this pool's part of
  it (:mod:`.sharing`); alone, ``share = need``;
* ``window_max`` is the highest target of the last ``scale_down_delay`` seconds (:mod:`.window`):
  rises apply at once, falls wait for the delay (the hysteresis);
* ``memory_limit`` applies to rises only: at or over the pool's budget no worker is added, and
  below it only as many as fit, at the list's mean worker USS each;
* ``busy`` and ``min`` are floors: a scale-down never asks for fewer workers than are running
  jobs, so only idle workers retire, and the memory budget never takes a list below ``min``.

Pure: the caller reads Redis and the registry, passes the clock, and applies the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django_rq_pool.config.plan import Autoscale
from django_rq_pool.control.autoscale.sharing import Member, split
from django_rq_pool.control.autoscale.window import ScaleDownWindow

MIB = 2**20


@dataclass(frozen=True)
class Inputs:
    """What one decision looks at; the registry supplies ``peers``, Redis the ``backlog``."""

    backlog: int  # jobs waiting on the list's queues
    busy: int  # this pool's workers of the list running a job
    current: int  # the count this pool asks of the master now
    pool_id: str = "self"
    peers: tuple[Member, ...] = ()  # other live pools serving the same list
    memory_used: int | None = None  # the pool's total PSS, bytes
    memory_budget: int | None = None  # --max-memory, bytes
    worker_memory: int | None = None  # what one more worker costs (mean USS of the list's workers), bytes


@dataclass(frozen=True)
class Decision:
    """The count to ask for and why, for the log."""

    desired: int
    need: int
    share: int
    reason: str
    held_by_memory: bool = False


@dataclass
class ListScaler:
    """The decision state of one list in one pool: its bounds and its scale-down window."""

    bounds: Autoscale
    window: ScaleDownWindow = field(init=False)
    last: int | None = None  # the count this scaler asked for last

    def __post_init__(self) -> None:
        self.window = ScaleDownWindow(self.bounds.scale_down_delay)

    def decide(self, inputs: Inputs, now: float) -> Decision:
        """The desired count at monotonic time ``now``.

        A count this scaler did not ask for (the starting count, a TTIN, the end of an override)
        counts as a need at that moment, so it too lasts ``scale_down_delay`` before it falls.
        """
        low, high = self.bounds.min, self.bounds.max
        if inputs.current != self.last:
            self.window.record(now, min(max(inputs.current, low), high))
        me = Member(inputs.pool_id, inputs.busy, low, high)
        need = inputs.backlog + inputs.busy + sum(peer.busy for peer in inputs.peers)
        share = split(need, [me, *inputs.peers])[inputs.pool_id]
        target = min(max(share, low), high)
        wanted = self.window.record(now, target)
        desired, held = wanted, False
        if wanted > inputs.current:
            room = self._room(inputs)
            if room is not None and inputs.current + room < wanted:
                desired, held = inputs.current + room, True
        desired = max(desired, low, min(inputs.busy, high))
        if held:
            verb = "scale-up held by memory"
        elif desired != inputs.current:
            verb = "scale up" if desired > inputs.current else "scale down"
        else:
            verb = "steady"
            drop = self.window.falls_below(inputs.current)
            if target < inputs.current and drop is not None:
                verb = f"steady, down to {max(target, inputs.busy)} in {max(0.0, drop - now):.0f}s without more need"
        facts = self._facts(inputs, need, share, target, wanted)
        self.last = desired
        return Decision(desired, need, share, f"{verb}: {inputs.current} -> {desired} ({facts})", held)

    def _room(self, inputs: Inputs) -> int | None:
        """How many more workers fit in the memory budget (None: no budget or nothing measured)."""
        if inputs.memory_budget is None or inputs.memory_used is None:
            return None
        free = inputs.memory_budget - inputs.memory_used
        if free <= 0:
            return 0
        if not inputs.worker_memory:
            return None
        return free // inputs.worker_memory

    def _facts(self, inputs: Inputs, need: int, share: int, target: int, wanted: int) -> str:
        parts = [f"backlog {inputs.backlog}", f"busy {inputs.busy}"]
        if inputs.peers:
            busy = sum(p.busy for p in inputs.peers)
            parts.append(f"{len(inputs.peers)} other pools (busy {busy})")
        parts += [f"need {need}", f"share {share}", f"bounds {self.bounds.min}..{self.bounds.max}"]
        if wanted != target:
            parts.append(f"{wanted} wanted in the last {self.bounds.scale_down_delay:g}s")
        if inputs.memory_budget is not None and inputs.memory_used is not None:
            parts.append(f"memory {inputs.memory_used // MIB} of {inputs.memory_budget // MIB} MiB")
        return ", ".join(parts)
