"""Import job modules in the master before it forks, so no job child imports them again.

rq's job child imports the job function's module when it runs the job: a module its worker never
imported is imported again for every job. Imported once in the master, before the fork, the module
is shared by every worker (copy-on-write) and costs a job nothing.

The modules come from ``settings.RQ_POOL_PRELOAD`` (dotted names, imported in that order) and, when
``settings.RQ_POOL_PRELOAD_DISCOVER`` is true, from the ``jobs`` and ``tasks`` modules of every
installed app. A module that fails to import stops the pool before anything forks, with one line
naming the module and what failed where (a :class:`~django_rq_pool.config.loader.ConfigError`: exit 2).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import logging
import traceback

from django.apps import apps
from django.conf import settings
from django.utils.module_loading import module_has_submodule

from django_rq_pool.config.loader import ConfigError

log = logging.getLogger(__name__)

DISCOVERED = ("jobs", "tasks")
# Every worker imports these as it connects to Redis (host name encoding); imported once here, they
# are shared instead of being a private copy in each worker (about 0.5 MB each).
WORKER_IMPORTS = ("encodings.idna",)
LISTED = "settings.RQ_POOL_PRELOAD"
DISCOVER = "settings.RQ_POOL_PRELOAD_DISCOVER"


def warm_worker_caches() -> None:
    """Build in the master what every worker would otherwise build for itself, privately.

    rq parses each job's timestamps with ``datetime.strptime``, whose first call imports
    ``_strptime`` and compiles a regular expression for the format (half of what a worker's
    first job un-shared). Each redis-py client looks its own version up with
    ``importlib.metadata``, which caches the listings of ``sys.path`` it reads.
    """
    from rq.utils import now, utcformat, utcparse

    utcparse(utcformat(now()))
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("redis")


def listed_modules() -> list[str]:
    """``settings.RQ_POOL_PRELOAD``, checked: a list or tuple of dotted module names."""
    value = getattr(settings, "RQ_POOL_PRELOAD", None)
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(LISTED, f"must be a list of module names, got {type(value).__name__} {value!r}")
    for name in value:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(LISTED, f"must hold dotted module names (strings), got {name!r}")
    return [name.strip() for name in value]


def discovered_modules() -> list[str]:
    """The ``jobs``/``tasks`` modules of installed apps, if ``RQ_POOL_PRELOAD_DISCOVER`` is on."""
    if not getattr(settings, "RQ_POOL_PRELOAD_DISCOVER", False):
        return []
    found: list[str] = []
    for app in apps.get_app_configs():
        found.extend(f"{app.name}.{sub}" for sub in DISCOVERED if module_has_submodule(app.module, sub))
    return found


def _where(exc: BaseException) -> str:
    """The file and line that failed: the SyntaxError's own, else the innermost frame outside importlib."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def import_modules(names: list[str], source: str) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:
            where = _where(exc)
            detail = f"{type(exc).__name__}: {exc}" + (f" (at {where})" if where else "")
            raise ConfigError(source, f"cannot import job module {name!r}: {detail}") from None


def preload_job_modules() -> list[str]:
    """Import the configured job modules; returns their names. Raises ConfigError on the first failure."""
    for name in WORKER_IMPORTS:
        importlib.import_module(name)
    warm_worker_caches()
    listed = listed_modules()
    import_modules(listed, LISTED)
    discovered = [name for name in discovered_modules() if name not in listed]
    import_modules(discovered, DISCOVER)
    names = listed + discovered
    if names:
        log.info("preloaded %d job module(s): %s", len(names), ", ".join(names))
    return names
