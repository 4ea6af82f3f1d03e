"""From command-line options to a running pool: load, validate, set up, fork."""

from __future__ import annotations

import gc
import logging
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from django.conf import settings
from django.db import connections

from django_rq_pool.common import titles
from django_rq_pool.common.exit_codes import EXIT_CONFIG, EXIT_ERROR, EXIT_OK
from django_rq_pool.common.logs import configure_logging
from django_rq_pool.config import loader as config
from django_rq_pool.config.control import control_settings
from django_rq_pool.config.env_counts import apply_counts, counts_from_environment
from django_rq_pool.config.loader import ConfigError, Source
from django_rq_pool.config.options import PoolOptions
from django_rq_pool.config.plan import PoolPlan
from django_rq_pool.config.redact import describe_connection
from django_rq_pool.config.validation import max_workers_setting, validate_plan
from django_rq_pool.hooks import load_hooks, run_hooks
from django_rq_pool.master.arbiter import Arbiter
from django_rq_pool.master.control_link import ControlLink
from django_rq_pool.master.huge_pages import start_huge_pages
from django_rq_pool.master.preload import preload_job_modules
from django_rq_pool.master.warm import warm_django
from django_rq_pool.service.operations import Operations, OperationsError, Service, with_settings

log = logging.getLogger("django_rq_pool")


@dataclass(frozen=True)
class Request:
    """What the user asked for on the command line (None: not given)."""

    config_path: str | None = None
    environment: str | None = None
    worker_class: str | None = None
    job_class: str | None = None
    queue_class: str | None = None
    with_scheduler: bool | None = None
    check: bool = False
    name: str | None = None  # --name: the pool's name in the control plane


def _class_defaults(request: Request) -> dict[str, Any]:
    return {
        "worker_class": request.worker_class,
        "job_class": request.job_class,
        "queue_class": request.queue_class,
        "with_scheduler": request.with_scheduler or None,
    }


class PlanLoader:
    """Loads and validates the plan; called again on HUP for file sources."""

    def __init__(self, request: Request):
        self.request = request
        self.environment = config.choose_environment(request.environment)
        self.settings_value = getattr(settings, "RQ_POOL", None)
        self.source: Source = config.find_source(request.config_path, self.settings_value is not None, Path.cwd())
        self.cap = max_workers_setting()

    def __call__(self) -> PoolPlan:
        plan = config.load_plan(self.source, self.settings_value, self.environment, self.cap)
        plan = apply_counts(plan, counts_from_environment())  # lists it adds get the defaults too
        plan = plan.with_defaults(_class_defaults(self.request))
        validate_plan(plan)
        return plan


def close_db_connections() -> None:
    """Close every Django connection (and 5.1+ pools) so no child inherits a live socket."""
    for connection in connections.all(initialized_only=True):
        connection.close()
        close_pool = getattr(connection, "close_pool", None)
        if callable(close_pool):
            close_pool()


def print_plan(plan: PoolPlan, out: TextIO, max_memory: int | None = None) -> None:
    """The resolved plan for --check: each list, its count, options and Redis connection."""
    from django_rq.connection_utils import filter_connection_params

    out.write(f"configuration OK: {plan.source}, {plan.total} workers\n")
    for group in plan.groups:
        params = filter_connection_params(settings.RQ_QUEUES[group.queues[0]])
        extra = group.options.describe() or "default options"
        if group.autoscale is not None:
            extra = f"{group.autoscale.describe()}; {extra}"
        out.write(f"  [{group.name}] x{group.count}: {extra}; redis: {describe_connection(params)}\n")
    if max_memory is not None:
        out.write(f"  max_memory: {max_memory / 2**20:.0f} MiB (autoscaling adds no worker at or over it)\n")


def run_pool(request: Request, options: PoolOptions, stdout: TextIO = sys.stdout, ops: Operations | None = None) -> int:
    """Run the pool in this process (where Django is set up); returns the exit status."""
    gc.disable()  # off since Django loaded this app (collector.py); again for call_command()
    service = None
    log_file = None
    if not request.check:
        try:
            service = Service(with_settings(ops or Operations()))
            log_file = service.log_handler()
        except OperationsError as exc:
            sys.stderr.write(f"rqpool: {exc}\n")
            return exc.status
    configure_logging(options.logging_level, log_file=log_file)
    try:
        load_hooks(getattr(settings, "RQ_POOL_HOOKS", None))
        loader = PlanLoader(request)
        plan = loader()
        control = control_settings(request.name, settings)
        preload_job_modules()
    except ConfigError as exc:
        sys.stderr.write(f"rqpool: configuration error: {exc}\n")
        return EXIT_CONFIG
    if request.check:
        print_plan(plan, stdout, options.max_memory)
        return EXIT_OK
    environment = f" (environment {loader.environment!r})" if loader.environment else ""
    if control is None and any(group.autoscale is not None for group in plan.groups):
        log.warning("autoscaling needs the control plane, which is off: autoscaled lists keep their starting count")
    log.info("configuration from %s%s", loader.source.name, environment)
    assert service is not None
    try:
        service.start()
        run_hooks("setup")
    except OperationsError as exc:
        log.error("%s", exc)
        service.finish(exc.status, str(exc))
        return exc.status
    except Exception:
        log.error("setup hook failed; nothing was started:\n%s", traceback.format_exc())
        service.finish(EXIT_ERROR, "setup hook failed; nothing was started")
        return EXIT_ERROR
    collapsing = start_huge_pages()  # in a thread while Django is warmed
    warm_django()
    close_db_connections()
    if collapsing is not None:
        collapsing.finish()  # last before the first fork: what is loaded now is what every worker shares
    titles.install(options.app_name)
    arbiter = Arbiter(
        plan,
        options,
        reload_plan=loader if loader.source.reloadable else None,
        control=ControlLink(control) if control is not None else None,
        **service.callbacks(),
    )
    status = EXIT_ERROR
    try:
        status = arbiter.run()
    finally:
        service.finish(status)
    return status


def default_app_name() -> str:
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "django")
    return module.split(".")[0]
