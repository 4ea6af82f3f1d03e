"""``manage.py rqpool``: the command-line face of :mod:`django_rq_pool.runner`."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_rq_pool.logs import level_for_verbosity
from django_rq_pool.options import TERM_MODES, PoolOptions
from django_rq_pool.runner import Request, default_app_name, run_pool


class Command(BaseCommand):
    help = (
        "Run a pool of rq workers: the configured number of workers per queue list, forked "
        "from this process after Django is set up. Signals: HUP reload, QUIT graceful stop, "
        "INT/TERM stop, WINCH stop workers, USR1/USR2/CONT forwarded to workers."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        env = os.environ.get
        parser.add_argument(
            "-c",
            "--config",
            help="YAML config file (default: $RQ_POOL_CONFIG, settings.RQ_POOL, rq-pool.yml, config/rq-pool.yml)",
        )
        parser.add_argument(
            "-E",
            "--environment",
            help="environment section to merge over the top level (default: $RQ_POOL_ENV, then $DJANGO_ENV)",
        )
        parser.add_argument("--worker-class", help="default rq worker class (dotted path) for every list")
        parser.add_argument("--job-class", help="default rq job class (dotted path)")
        parser.add_argument("--queue-class", help="default rq queue class (dotted path)")
        parser.add_argument(
            "--with-scheduler",
            action="store_true",
            default=None,
            help="run rq's scheduler in the workers of every list",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="workers drain their queues and exit; the master exits 0 when all are done",
        )
        parser.add_argument(
            "--term",
            choices=TERM_MODES,
            default=env("RQ_POOL_TERM", "immediate"),
            help="what TERM does (default: $RQ_POOL_TERM or immediate)",
        )
        parser.add_argument(
            "--graceful-timeout",
            type=float,
            default=float(env("RQ_POOL_GRACEFUL_TIMEOUT", "30")),
            help="seconds a graceful-wait TERM waits before killing jobs (default: $RQ_POOL_GRACEFUL_TIMEOUT or 30)",
        )
        parser.add_argument(
            "--kill-timeout",
            type=float,
            default=10.0,
            help="seconds between killing jobs and SIGKILL of stragglers (default: 10)",
        )
        parser.add_argument(
            "--single-process-group",
            action="store_true",
            help="keep workers in the master's process group (default: one group each)",
        )
        parser.add_argument(
            "--give-up-after",
            type=float,
            default=0.0,
            help="exit 3 once every list has failed to start for this many seconds (default: 0, never)",
        )
        parser.add_argument(
            "-a",
            "--app-name",
            default=None,
            help="name shown in the master's process title (default: settings package)",
        )
        parser.add_argument(
            "--check", action="store_true", help="validate the configuration, print the plan and exit; starts nothing"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        request = Request(
            config_path=opts["config"],
            environment=opts["environment"],
            worker_class=opts["worker_class"],
            job_class=opts["job_class"],
            queue_class=opts["queue_class"],
            with_scheduler=opts["with_scheduler"],
            check=opts["check"],
        )
        options = PoolOptions(
            app_name=opts["app_name"] or default_app_name(),
            burst=opts["burst"],
            term_mode=opts["term"],
            graceful_timeout=opts["graceful_timeout"],
            kill_timeout=opts["kill_timeout"],
            own_process_groups=not opts["single_process_group"],
            logging_level=level_for_verbosity(opts["verbosity"]),
            give_up_after=opts["give_up_after"],
        )
        sys.exit(run_pool(request, options, self.stdout))
