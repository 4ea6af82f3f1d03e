"""The control plane's settings (docs/control.md), checked before anything forks."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from django_rq_pool.config.loader import ConfigError
from django_rq_pool.config.plan import DEFAULT_MAX_WORKERS

log = logging.getLogger(__name__)

NAME_ENV_VAR = "RQ_POOL_NAME"
DEFAULT_HEARTBEAT = 2.0
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")


@dataclass(frozen=True)
class ControlSettings:
    name: str  # "" means the host name, filled in by the master
    max_workers: int = DEFAULT_MAX_WORKERS
    heartbeat: float = DEFAULT_HEARTBEAT


def pool_name(explicit: str | None, settings: Any) -> str:
    """--name, then $RQ_POOL_NAME, then settings.RQ_POOL_NAME; "" for the host name."""
    name = explicit or os.environ.get(NAME_ENV_VAR) or getattr(settings, "RQ_POOL_NAME", None) or ""
    if name and not _NAME.match(name):
        raise ConfigError("--name/RQ_POOL_NAME", f"{name[:60]!r} is not a pool name: use 1-100 of A-Z a-z 0-9 _ . : -")
    return name


def control_settings(explicit_name: str | None, settings: Any) -> ControlSettings | None:
    """The control plane's settings, or None when ``settings.RQ_POOL_CONTROL`` is False."""
    from django_rq_pool.config.validation import max_workers_setting
    from django_rq_pool.control.client import control_queue_name

    if not getattr(settings, "RQ_POOL_CONTROL", True):
        return None
    queue = control_queue_name()
    if queue not in (getattr(settings, "RQ_QUEUES", None) or {}):
        if not getattr(settings, "RQ_POOL_CONTROL_QUEUE", None):
            log.warning(
                "control plane off: RQ_QUEUES has no 'default' entry for the registry; name one in "
                "RQ_POOL_CONTROL_QUEUE to turn it on, or set RQ_POOL_CONTROL = False to silence this"
            )
            return None
        raise ConfigError(
            "settings.RQ_POOL_CONTROL_QUEUE",
            f"the control plane's registry uses the Redis of RQ_QUEUES[{queue!r}], which does not exist; "
            "add that entry, name another one in RQ_POOL_CONTROL_QUEUE, or set RQ_POOL_CONTROL = False",
        )
    cap = max_workers_setting()
    beat = getattr(settings, "RQ_POOL_CONTROL_HEARTBEAT", DEFAULT_HEARTBEAT)
    if isinstance(beat, bool) or not isinstance(beat, (int, float)) or not 0.2 <= beat <= 60:
        raise ConfigError("settings.RQ_POOL_CONTROL_HEARTBEAT", f"must be seconds between 0.2 and 60, got {beat!r}")
    return ControlSettings(pool_name(explicit_name, settings), cap, float(beat))
