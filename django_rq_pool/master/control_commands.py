"""The commands the control child hands the master, applied as the matching signal would be.

Each ``_cmd_<name>`` returns (ok, text, changes) for the reply; a command that mirrors a signal
calls the same ``SignalHandlers`` method, so the two behave alike. A failing command is refused
with its error: it never takes the master down.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django_rq_pool.master.control_feed import ControlFeed
from django_rq_pool.master.overrides import Override, OverrideBook, group_of

if TYPE_CHECKING:
    from django_rq_pool.master.arbiter import Arbiter

log = logging.getLogger("django_rq_pool.master.control_link")  # one logger for the control link

Outcome = tuple[bool, str, dict[str, Any]]


class ControlCommands:
    """Applies commands and the autoscaler's counts to the arbiter's plan."""

    def __init__(self, arbiter: Arbiter, book: OverrideBook, feed: ControlFeed):
        self.arbiter = arbiter
        self.book = book
        self.feed = feed

    def run(self, message: dict[str, Any]) -> None:
        command, args = message["command"], message["args"]
        try:
            ok, text, changes = getattr(self, f"_cmd_{command.replace('-', '_')}")(args)
        except Exception as exc:  # a command must never take the master down
            log.exception("control: %s failed", command)
            ok, text, changes = False, f"failed: {type(exc).__name__}: {exc}", {}
        self.feed.commands["applied" if ok else "refused"] += 1
        log.log(
            logging.INFO if ok else logging.WARNING, "control: %s %s: %s", command, "applied" if ok else "refused", text
        )
        self.feed.send({"t": "reply", "id": message["id"], "ok": ok, "message": text, "changes": changes})

    def apply_autoscale(self, message: dict[str, Any]) -> None:
        """The autoscaler's count for a list (its decision and inputs are in the control child's log)."""
        arbiter = self.arbiter
        queues = tuple(message["list"].split(","))
        group = group_of(arbiter.plan, queues)
        refusal = self.book.autoscaled.check(group, message["count"], queues in self.book.overrides)
        if refusal or self._stopping() or arbiter.spawning_paused:
            log.debug("autoscale: [%s] %d ignored: %s", message["list"], message["count"], refusal or "not running")
            return
        assert group is not None
        if group.count == message["count"]:
            return
        log.info("autoscale: [%s] %d -> %d workers", message["list"], group.count, message["count"])
        self.book.autoscaled.set(queues, message["count"])
        self._replan(message["prefer"])

    def _replan(self, prefer: Any = ()) -> None:
        """Apply the book to the arbiter's plan; ``prefer``: the pids to stop first (idle ones)."""
        arbiter = self.arbiter
        arbiter.plan = self.book.effective(arbiter.resized)
        arbiter.roster.prefer_retire = set(prefer)
        arbiter.replan()

    def _stopping(self) -> bool:
        return self.arbiter.stop_mode is not None

    def _cmd_scale(self, args: dict[str, Any]) -> Outcome:
        if self._stopping():
            return False, "the pool is stopping", {}
        queues = tuple(args["list"].split(","))
        group = group_of(self.arbiter.plan, queues)
        current = group.count if group is not None else 0
        count = args["count"] if "count" in args else current + args["delta"]
        refusal = self.book.check_count(self.arbiter.plan, queues, count)
        if refusal:
            return False, refusal, {}
        configured = self.book.configured(queues)
        self.book.overrides[queues] = Override(count, configured)
        self._replan(args.get("prefer", ()))
        text = f"[{args['list']}] {current} -> {count} workers (configured {configured})"
        if group is not None and group.autoscale is not None:
            text += "; autoscaling is suspended for this list until reset"
        return True, text, {"list": args["list"], "from": current, "to": count, "override": count}

    def _cmd_reset(self, args: dict[str, Any]) -> Outcome:
        if "list" in args:
            queues = tuple(args["list"].split(","))
            if queues not in self.book.overrides:
                return True, f"[{args['list']}] has no override", {"reset": []}
            dropped = [queues]
        else:
            dropped = list(self.book.overrides)
        for queues in dropped:
            del self.book.overrides[queues]
        self.arbiter.plan = self.book.effective(self.arbiter.resized)
        self.arbiter.replan()
        keys = [",".join(q) for q in dropped]
        return True, f"overrides dropped: {', '.join(keys) or 'none'}", {"reset": keys}

    def _cmd_pause(self, args: dict[str, Any]) -> Outcome:
        self.arbiter.handlers.handle_usr2()
        return True, "workers paused (USR2): they finish their current job and take no new one", {"paused": True}

    def _cmd_resume(self, args: dict[str, Any]) -> Outcome:
        self.arbiter.handlers.handle_cont()
        return True, "workers resumed (CONT)", {"paused": False}

    def _cmd_reload(self, args: dict[str, Any]) -> Outcome:
        arbiter = self.arbiter
        if self._stopping():
            return False, "the pool is stopping", {}
        if arbiter.reload_plan is None:
            return False, f"configuration comes from {arbiter.plan.source}; nothing to reload", {}
        arbiter.handlers.handle_hup()
        if arbiter.reload_error:
            return False, f"reload failed, keeping the last good configuration: {arbiter.reload_error}", {}
        return True, f"reloaded: {arbiter.describe_plan()}", {}

    def _cmd_stop_workers(self, args: dict[str, Any]) -> Outcome:
        if self._stopping():
            return False, "the pool is stopping", {}
        self.arbiter.handlers.handle_winch()
        return True, "stopping every worker (WINCH); reload or HUP starts them again", {}

    def _cmd_quit(self, args: dict[str, Any]) -> Outcome:
        if self._stopping():
            return False, "the pool is already stopping", {}
        self.arbiter.handlers.handle_quit()
        return True, "graceful stop (QUIT): workers finish their jobs, then the pool exits", {}
