"""``manage.py check`` validates the pool's configuration, so CI catches a bad one before deploy.

The check runs what ``rqpool --check`` runs (hooks, the plan from whichever source ``rqpool``
would use without options, job module preloading) and reports a failure as one error. A project
with no configuration at all has nothing to check. ``rqpool`` itself skips this check: it loads
and validates its configuration with its own command-line options, and exits 2 on an error.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core import checks

from django_rq_pool.master.collector import is_rqpool_process

CONFIG_ERROR_ID = "django_rq_pool.E001"


@checks.register("django_rq_pool")
def pool_configuration(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if is_rqpool_process(sys.argv):
        return []
    from pathlib import Path

    from django.conf import settings

    from django_rq_pool.config import loader as config
    from django_rq_pool.config.loader import ConfigError
    from django_rq_pool.hooks import load_hooks
    from django_rq_pool.master.preload import preload_job_modules
    from django_rq_pool.service.runner import PlanLoader, Request

    try:
        config.find_source(None, getattr(settings, "RQ_POOL", None) is not None, Path.cwd())
    except ConfigError:
        return []  # nothing configured here: rqpool is started with --config, or not at all
    try:
        load_hooks(getattr(settings, "RQ_POOL_HOOKS", None))
        PlanLoader(Request())()
        preload_job_modules()
    except ConfigError as exc:
        return [checks.Error(f"rqpool configuration: {exc}", hint="rqpool --check shows the same", id=CONFIG_ERROR_ID)]
    return []
