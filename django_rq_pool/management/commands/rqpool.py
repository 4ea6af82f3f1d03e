"""``manage.py rqpool``: the command-line face of :mod:`django_rq_pool.service.runner`."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_rq_pool.common.exit_codes import EXIT_CONFIG
from django_rq_pool.common.logs import level_for_verbosity
from django_rq_pool.config.loader import ConfigError
from django_rq_pool.config.options import TERM_MODES, PoolOptions
from django_rq_pool.config.validation import max_memory_option
from django_rq_pool.service.operations import Operations
from django_rq_pool.service.runner import Request, default_app_name, run_pool


class Command(BaseCommand):
    help = (
        "Run a pool of rq workers: the configured number of workers per queue list, forked "
        "from this process after Django is set up. Signals: HUP reload, QUIT graceful stop, "
        "INT/TERM stop, WINCH stop workers, USR1/USR2/CONT forwarded to workers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
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
            default=None,
            help="what TERM does (default: $RQ_POOL_TERM or immediate)",
        )
        parser.add_argument(
            "--graceful-timeout",
            type=float,
            default=None,
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
            "--min-uptime",
            type=float,
            default=5.0,
            help="a worker that dies sooner than this after its start is a failed start (default: 5)",
        )
        parser.add_argument(
            "--backoff-max",
            type=float,
            default=60.0,
            help="longest wait between failed starts of one queue list, in seconds (default: 60)",
        )
        parser.add_argument(
            "--stuck-timeout",
            type=float,
            default=120.0,
            help="kill and replace a worker whose Redis heartbeat is this many seconds old (default: 120; 0: never)",
        )
        parser.add_argument(
            "--max-memory",
            metavar="SIZE",
            help="memory budget of the whole pool (total PSS), e.g. 4GiB: autoscaling adds no worker at or over it "
            "(default: settings.RQ_POOL_MAX_MEMORY; none)",
        )
        parser.add_argument(
            "-a",
            "--app-name",
            default=None,
            help="name shown in the master's process title (default: settings package)",
        )
        parser.add_argument(
            "--name",
            default=None,
            help="the pool's name in the control plane; overrides are kept under it "
            "(default: $RQ_POOL_NAME, settings.RQ_POOL_NAME, else the host name)",
        )
        parser.add_argument(
            "--check", action="store_true", help="validate the configuration, print the plan and exit; starts nothing"
        )
        parser.add_argument(
            "--log-file",
            metavar="PATTERN",
            help="log to this file instead of stderr; {queues}, {index} and {pid} give one file per list or "
            "worker (default: settings.RQ_POOL_LOG_FILE; rqpool.log with --daemon). HUP reopens it",
        )
        parser.add_argument(
            "-p",
            "--pidfile",
            help="write the master's pid here; refuse to start if it names a live process "
            "(default: settings.RQ_POOL_PIDFILE)",
        )
        parser.add_argument(
            "-d",
            "--daemon",
            action="store_true",
            help="detach and log to files; exits 0 once every worker listens, non-zero with the reason if not",
        )
        parser.add_argument(
            "--hot-swap",
            action="store_true",
            help="replace the pool named in --pidfile: QUIT it once this pool's workers all listen; "
            "one at a time (exit 4, starting nothing, while another hot swap of that pidfile is under way)",
        )
        parser.add_argument(
            "--ready-timeout",
            type=float,
            default=60.0,
            help="seconds --daemon waits for the workers before giving up on reporting (default: 60)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            term_mode = opts["term"] or env_choice("RQ_POOL_TERM", TERM_MODES, "immediate")
            graceful_timeout = opts["graceful_timeout"]
            if graceful_timeout is None:
                graceful_timeout = env_seconds("RQ_POOL_GRACEFUL_TIMEOUT", 30.0)
        except ValueError as exc:
            sys.stderr.write(f"rqpool: {exc}\n")
            sys.exit(EXIT_CONFIG)
        try:
            max_memory = max_memory_option(opts["max_memory"])
        except ConfigError as exc:
            sys.stderr.write(f"rqpool: configuration error: {exc}\n")
            sys.exit(EXIT_CONFIG)
        request = Request(
            config_path=opts["config"],
            environment=opts["environment"],
            worker_class=opts["worker_class"],
            job_class=opts["job_class"],
            queue_class=opts["queue_class"],
            with_scheduler=opts["with_scheduler"],
            check=opts["check"],
            name=opts["name"],
        )
        options = PoolOptions(
            app_name=opts["app_name"] or default_app_name(),
            burst=opts["burst"],
            term_mode=term_mode,
            graceful_timeout=graceful_timeout,
            kill_timeout=opts["kill_timeout"],
            own_process_groups=not opts["single_process_group"],
            logging_level=level_for_verbosity(opts["verbosity"]),
            give_up_after=opts["give_up_after"],
            min_uptime=opts["min_uptime"],
            backoff_max=opts["backoff_max"],
            stuck_timeout=opts["stuck_timeout"],
            max_memory=max_memory,
        )
        ops = Operations(
            log_file=opts["log_file"],
            pidfile=opts["pidfile"],
            daemon=opts["daemon"],
            hot_swap=opts["hot_swap"],
            ready_timeout=opts["ready_timeout"],
        )
        sys.exit(run_pool(request, options, self.stdout, ops))


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ValueError(f"${name}={value!r} is not one of: {', '.join(choices)}")
    return value


def env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"${name}={value!r} is not a number of seconds (e.g. 30 or 2.5)")
    return seconds
