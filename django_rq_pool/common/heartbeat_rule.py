"""How often workers heartbeat, from ``--stuck-timeout``.

Workers beat at this rate and the master's stuck-worker check judges by it: one rule, two processes.
"""

from __future__ import annotations

MAX_INTERVAL = 30
UNREADABLE = "?"  # in a heartbeat report, in place of the heartbeat: this worker's Redis could not be read


def heartbeat_interval(stuck_timeout: float) -> int:
    """How often workers heartbeat so that a healthy one never looks stuck."""
    return int(max(1, min(MAX_INTERVAL, stuck_timeout / 4)))


def worker_heartbeat_kwargs(stuck_timeout: float) -> dict[str, int]:
    """rq Worker arguments: idle workers heartbeat every dequeue timeout (worker_ttl - 15), busy ones every
    job_monitoring_interval."""
    if stuck_timeout <= 0:
        return {}
    interval = heartbeat_interval(stuck_timeout)
    return {"worker_ttl": interval + 15, "job_monitoring_interval": interval}
