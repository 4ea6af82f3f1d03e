"""User hooks: ``setup`` and ``after_spawn`` run in the master, ``after_prefork`` in each worker,
``job_killed`` in a child of the worker or janitor that failed a job the pool killed
(see ``common/job_killed.py``).

Hooks come from decorators (``@django_rq_pool.after_prefork``) in app code, including any
``rqpool_hooks`` module of an installed app, and from dotted paths in
``settings.RQ_POOL_HOOKS``. Several hooks of a kind run in registration order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django_rq_pool.config.plan import QueueGroup

HOOK_KINDS = ("setup", "after_prefork", "after_spawn", "job_killed")
AUTODISCOVER_MODULE = "rqpool_hooks"

_registry: dict[str, list[Callable[..., Any]]] = {kind: [] for kind in HOOK_KINDS}


@dataclass(frozen=True)
class WorkerContext:
    """What a hook learns about one worker of the pool."""

    group: QueueGroup
    index: int  # slot within its queue list, 0 .. count-1
    name: str  # the rq worker name registered in Redis
    master_pid: int

    @property
    def queues(self) -> tuple[str, ...]:
        return self.group.queues


def _register(kind: str, func: Callable[..., Any]) -> Callable[..., Any]:
    if func not in _registry[kind]:
        _registry[kind].append(func)
    return func


def setup(func: Callable[[], Any]) -> Callable[[], Any]:
    """Run ``func()`` once in the master before the first fork (close sockets here)."""
    return _register("setup", func)


def after_prefork(func: Callable[[Any, WorkerContext], Any]) -> Callable[[Any, WorkerContext], Any]:
    """Run ``func(worker, context)`` in each new worker before it takes a job."""
    return _register("after_prefork", func)


def after_spawn(func: Callable[[int, WorkerContext], Any]) -> Callable[[int, WorkerContext], Any]:
    """Run ``func(pid, context)`` in the master after each worker is forked."""
    return _register("after_spawn", func)


def job_killed(func: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """Run ``func(job, reason)`` when the pool has failed ``job`` because it killed it (not in the master)."""
    return _register("job_killed", func)


def load_hooks(paths: dict[str, list[str]] | None) -> None:
    """Import ``rqpool_hooks`` modules of installed apps and the dotted paths from settings."""
    from django.utils.module_loading import autodiscover_modules, import_string

    from django_rq_pool.config.loader import ConfigError

    autodiscover_modules(AUTODISCOVER_MODULE)
    for kind, dotted in (paths or {}).items():
        if kind not in HOOK_KINDS:
            raise ConfigError(
                "settings.RQ_POOL_HOOKS", f"unknown hook kind; known kinds: {', '.join(HOOK_KINDS)}", kind
            )
        for path in [dotted] if isinstance(dotted, str) else dotted:
            try:
                func = import_string(path)
            except ImportError as exc:
                raise ConfigError("settings.RQ_POOL_HOOKS", f"{path!r} cannot be imported: {exc}", kind) from None
            if not callable(func):
                raise ConfigError("settings.RQ_POOL_HOOKS", f"{path!r} is not callable", kind)
            _register(kind, func)


def hooks(kind: str) -> list[Callable[..., Any]]:
    """The registered hooks of one kind, in order."""
    return list(_registry[kind])


def run_hooks(kind: str, *args: Any) -> None:
    """Call every hook of a kind; the first exception propagates to the caller."""
    for func in _registry[kind]:
        func(*args)
