"""Pool-wide options, from the command line, the environment and settings."""

from __future__ import annotations

from dataclasses import dataclass

TERM_MODES = ("immediate", "graceful-wait", "graceful")


@dataclass(frozen=True)
class PoolOptions:
    """How the master runs; the same for every queue list."""

    app_name: str = "django"
    burst: bool = False
    term_mode: str = "immediate"
    graceful_timeout: float = 30.0  # TERM in graceful-wait mode, then escalate
    kill_timeout: float = 10.0  # after a cold stop, before SIGKILL of stragglers
    own_process_groups: bool = True
    logging_level: int = 20
    min_uptime: float = 5.0  # a worker that dies sooner counts as a failed start
    backoff_max: float = 60.0  # the longest wait between failed starts of one queue list
    stuck_timeout: float = 120.0  # kill a worker whose Redis heartbeat is this old (0: never)
    give_up_after: float = 0.0  # 0: never give up on crash-looping lists
    max_memory: int | None = None  # bytes (total PSS of the pool): autoscaling adds no worker at or over it

    @property
    def term_graceful(self) -> bool:
        return self.term_mode != "immediate"
