"""The pool's plan: which queue lists get how many workers, with which options.

A plan is plain data, built by :mod:`django_rq_pool.config.loader` and consumed by the master.
Two groups with the same queues but different options are different groups, so a
reload that changes a list's options replaces its workers instead of keeping them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

DEQUEUE_STRATEGIES = ("default", "round_robin", "random")
DEFAULT_MAX_WORKERS = 64  # the cap on one list's workers unless settings.RQ_POOL_MAX_WORKERS says otherwise
DEFAULT_SCALE_DOWN_DELAY = 30.0


@dataclass(frozen=True)
class WorkerOptions:
    """How each worker of a queue list is built and when it retires."""

    worker_class: str | None = None
    job_class: str | None = None
    queue_class: str | None = None
    max_jobs: int | None = None
    max_idle_time: int | None = None
    dequeue_strategy: str = "default"
    with_scheduler: bool = False
    memory_limit: int | None = None  # bytes of unique memory (USS)
    prefork_job_child: bool = False  # an idle worker keeps its next job child forked and waiting

    def describe(self) -> str:
        """Only the options that differ from the defaults, for log lines."""
        default = WorkerOptions()
        parts = [f"{name}={value}" for name, value in vars(self).items() if value != getattr(default, name)]
        return ", ".join(parts)


@dataclass(frozen=True)
class Autoscale:
    """The bounds within which the autoscaler moves a list's count (see docs/autoscaling.md)."""

    min: int
    max: int
    scale_down_delay: float = DEFAULT_SCALE_DOWN_DELAY  # seconds without need before workers retire

    def describe(self) -> str:
        return f"autoscale {self.min}..{self.max}, scale_down_delay={self.scale_down_delay:g}s"


@dataclass(frozen=True)
class QueueGroup:
    """One queue list (in priority order), its worker count (the starting count if autoscaled) and options."""

    queues: tuple[str, ...]
    count: int
    options: WorkerOptions = field(default_factory=WorkerOptions)
    line: int | None = field(default=None, compare=False)  # where the config file names it, for errors
    explicit: frozenset[str] = field(default=frozenset(), compare=False)  # options the config sets itself
    autoscale: Autoscale | None = None  # None: a fixed count; bounds are not part of the identity

    @property
    def name(self) -> str:
        return ",".join(self.queues)

    @property
    def max(self) -> int | None:
        """The most workers a runtime scale may give this list: an autoscaled list's ``max``."""
        return self.autoscale.max if self.autoscale is not None else None

    @property
    def identity(self) -> tuple[tuple[str, ...], WorkerOptions]:
        """What must stay equal for a running worker to belong to this group."""
        return (self.queues, self.options)


@dataclass(frozen=True)
class PoolPlan:
    """Every queue group, in the order the configuration lists them."""

    groups: tuple[QueueGroup, ...]
    source: str

    @property
    def total(self) -> int:
        return sum(group.count for group in self.groups)

    def with_defaults(self, defaults: dict[str, object]) -> PoolPlan:
        """Fill options the config leaves unset from command-line defaults; a list's own value wins.

        "Unset" is what the config does not name (``explicit``), not what equals the built-in
        default: ``with_scheduler: false`` written for one list beats ``--with-scheduler``.
        """
        groups = []
        for group in self.groups:
            values = dict(vars(group.options))
            for name, value in defaults.items():
                if value is not None and name not in group.explicit:
                    values[name] = value
            groups.append(replace(group, options=WorkerOptions(**values)))
        return PoolPlan(tuple(groups), self.source)
