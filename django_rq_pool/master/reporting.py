"""What the master tells the world: its process title, and the readiness/systemd callbacks.

The title is resque-pool's, listing every worker pid (rebuilt only when the roster changed).
The callbacks come from :mod:`django_rq_pool.service.operations`: ``on_ready`` once every
wanted worker is forked (readiness.py then waits until they listen), ``on_status`` with
READY=1 / RELOADING=1 / STOPPING=1 for systemd, ``on_tick`` once per pass (watchdog, STATUS=).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from setproctitle import setproctitle

if TYPE_CHECKING:
    from django_rq_pool.master.arbiter import Arbiter


class Reporter:
    """The title, the status line and the callbacks of one arbiter."""

    def __init__(
        self,
        arbiter: Arbiter,
        on_ready: Callable[[Arbiter], None] | None,
        on_status: Callable[[Arbiter, str], None] | None,
        on_tick: Callable[[Arbiter], None] | None,
    ):
        self.arbiter = arbiter
        self.on_ready = on_ready
        self.on_status = on_status
        self.on_tick = on_tick
        self.ready_sent = False
        self._pid_list: tuple[int, str] = (-1, "")  # (roster version, its pids)
        self._title = ""

    def describe_plan(self) -> str:
        plan = self.arbiter.plan
        parts = []
        for group in plan.groups:
            extra = group.options.describe()
            parts.append(f"[{group.name}]x{group.count}" + (f" ({extra})" if extra else ""))
        return f"{plan.total} workers from {plan.source}: " + ", ".join(parts)

    def status_line(self) -> str:
        arbiter = self.arbiter
        text = f"{arbiter.roster.live}/{0 if arbiter.spawning_paused else arbiter.plan.total} workers"
        backing_off = arbiter.backoff.describe(arbiter.plan.groups)
        if backing_off:
            text += f", backing off {'; '.join(backing_off)}"
        if arbiter.paused:
            text += ", paused (CONT resumes)"
        if arbiter.reload_error:
            text += ", last reload failed"
        return text

    def update_title(self) -> None:
        roster = self.arbiter.roster
        if self._pid_list[0] != roster.version:
            self._pid_list = (roster.version, ", ".join(str(pid) for pid in roster.records))
        title = (
            f"rqpool-master[{self.arbiter.options.app_name}]: {self.arbiter.state}: "
            f"managing [{self._pid_list[1]}] ({self.status_line()})"
        )
        if title != self._title:
            self._title = title
            setproctitle(title)

    def notify(self, message: str) -> None:
        if self.on_status is not None:
            self.on_status(self.arbiter, message)

    def check_ready(self) -> None:
        """READY=1 and ``on_ready`` once every wanted worker is forked (again after each reload)."""
        arbiter = self.arbiter
        if self.ready_sent or arbiter.roster.live < arbiter.plan.total:
            return
        self.ready_sent = True
        self.notify("READY=1")
        if self.on_ready is not None:
            self.on_ready(arbiter)

    def tick(self) -> None:
        if self.on_tick is not None:
            self.on_tick(self.arbiter)
