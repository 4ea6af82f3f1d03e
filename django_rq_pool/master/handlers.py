"""Every signal's behaviour in the master, one short ``handle_<name>`` each.

The loop calls :meth:`SignalHandlers.handle` for each queued signal, in arrival order, between
reaping and maintaining counts; a handler never blocks. Other sources of commands (a control
pipe) call the same methods, so a command and its signal always behave alike.
"""

from __future__ import annotations

import logging
import signal
import traceback
from dataclasses import replace
from typing import TYPE_CHECKING

from django_rq_pool.common.exit_codes import EXIT_OK
from django_rq_pool.common.log_files import reopen as reopen_log_files
from django_rq_pool.config.loader import ConfigError
from django_rq_pool.config.plan import PoolPlan
from django_rq_pool.master.stopping import PoolExit

if TYPE_CHECKING:
    from django_rq_pool.master.arbiter import Arbiter

log = logging.getLogger(__name__)


class SignalHandlers:
    """The master's reaction to each signal it handles."""

    def __init__(self, arbiter: Arbiter):
        self.arbiter = arbiter
        self.stopper = arbiter.stopper

    def handle(self, signum: int) -> None:
        name = signal.Signals(signum).name
        log.info("master received %s", name)
        handler = getattr(self, f"handle_{name[3:].lower()}", None)
        if handler is not None:
            handler()

    def handle_hup(self) -> None:
        """Reopen log files (workers too); unless stopping, end a WINCH and reload a config file."""
        arbiter = self.arbiter
        reopen_log_files()
        arbiter.signal_workers(signal.SIGHUP)
        if self.stopper.stopping:
            log.info("HUP during a stop: log files reopened; no reload")
            return
        arbiter.spawning_paused = False
        arbiter.replan()
        if arbiter.reload_plan is None:
            log.info("HUP: configuration comes from %s; nothing to reload", arbiter.plan.source)
            return
        arbiter.state = "reloading"
        arbiter.update_title()  # a reload can take a while (imports): show it
        arbiter.reporter.notify("RELOADING=1")
        self._reload()
        arbiter.replan()
        arbiter.state = "running"
        arbiter.reporter.ready_sent = False

    def _reload(self) -> None:
        arbiter = self.arbiter
        assert arbiter.reload_plan is not None
        try:
            plan = arbiter.reload_plan()
        except ConfigError as exc:
            arbiter.reload_error = str(exc)
            log.error("HUP: reload failed, keeping the last good configuration: %s", exc)
        except Exception as exc:  # e.g. a class module that raises on import: never a reason to die
            arbiter.reload_error = f"{type(exc).__name__}: {exc}"
            log.error("HUP: reload failed, keeping the last good configuration:\n%s", traceback.format_exc())
        else:
            arbiter.reload_error = None
            arbiter.resized = 0
            arbiter.plan = arbiter.control.rebase(plan) if arbiter.control is not None else plan
            log.info("HUP: reloaded %s", arbiter.describe_plan())

    def handle_quit(self) -> None:
        """Graceful stop: every worker finishes its job; the master waits for all of them."""
        if self.stopper.stopping:
            self.stopper.escalate("QUIT")
            return
        self.arbiter.begin_stop("graceful", None)

    def handle_int(self) -> None:
        """Workers finish their jobs on their own; the master exits now."""
        if self.stopper.stopping:
            self.stopper.escalate("INT")
            return
        self.arbiter.signal_workers(signal.SIGQUIT)
        raise PoolExit(EXIT_OK, "INT: workers told to finish their jobs and stop; master exits now")

    def handle_term(self) -> None:
        """Per ``--term``: a cold stop, a bounded graceful stop, or INT's behaviour."""
        if self.stopper.stopping:
            self.stopper.escalate("TERM")
            return
        options = self.arbiter.options
        if options.term_mode == "immediate":
            self.arbiter.begin_stop("cold", options.kill_timeout)
        elif options.term_mode == "graceful-wait":
            self.arbiter.begin_stop("graceful", options.graceful_timeout)
        else:
            self.arbiter.signal_workers(signal.SIGQUIT)
            raise PoolExit(EXIT_OK, "TERM (graceful): workers told to finish their jobs; master exits now")

    def handle_winch(self) -> None:
        """Stop every worker; the master stays, with zero workers, until a HUP."""
        self.arbiter.spawning_paused = True
        self.arbiter.replan()
        self.arbiter.signal_workers(signal.SIGQUIT)
        log.info("WINCH: stopping every worker; send HUP to start them again")

    def handle_usr1(self) -> None:
        """Every worker kills its current job (it ends failed with the reason)."""
        self.arbiter.signal_workers(signal.SIGUSR1)

    def handle_usr2(self) -> None:
        """Pause the pool until CONT: every worker finishes its current job, then takes no new one;
        workers forked meanwhile (replacements, TTIN, reload) start paused."""
        self.arbiter.paused = True
        self.arbiter.signal_workers(signal.SIGUSR2)

    def handle_cont(self) -> None:
        """Resume after USR2."""
        self.arbiter.paused = False
        self.arbiter.signal_workers(signal.SIGCONT)

    def handle_ttin(self) -> None:
        self.resize(+1)

    def handle_ttou(self) -> None:
        self.resize(-1)

    def resize(self, delta: int) -> None:
        """TTIN/TTOU: one worker more or less for every queue list, until the next reload."""
        arbiter = self.arbiter
        arbiter.resized += delta
        groups = tuple(replace(g, count=max(0, g.count + delta)) for g in arbiter.plan.groups)
        arbiter.plan = PoolPlan(groups, arbiter.plan.source)
        arbiter.replan()
        log.info("%s: %s", "TTIN" if delta > 0 else "TTOU", arbiter.describe_plan())
