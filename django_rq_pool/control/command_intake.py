"""Commands from the pool's pub/sub channel: checked, handed to the master, answered to the sender.

A command goes to the master over the control pipe; the master's reply comes back as a ``reply``
message and is pushed to the sender's reply list. Replies wait in an outbox until Redis takes
them, so an outage delays a reply but does not drop it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis

from django_rq_pool.control import wire
from django_rq_pool.control.commands import CommandError
from django_rq_pool.control.state import PoolView
from django_rq_pool.control.worker_details import WorkerDetails

log = logging.getLogger("django_rq_pool.control.child")  # one logger for the control child


def _shown_args(args: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in args.items() if k != "prefer")


class CommandIntake:
    """The commands waiting for the master's reply, and the replies waiting for Redis."""

    def __init__(self, view: PoolView, workers: WorkerDetails, to_master: Callable[[dict[str, Any]], bool]):
        self.view = view
        self.workers = workers
        self.to_master = to_master
        self.pending: dict[str, str] = {}  # command id -> reply list
        self.outbox: list[tuple[str, bytes]] = []

    def read(self, pubsub: Any) -> bool:
        """Take every command already received; True if one was refused (the record shows the count)."""
        refused = False
        while True:
            message = pubsub.get_message(timeout=0)
            if message is None:
                return refused
            if message.get("type") != "message":
                continue
            refused = not self.command(message["data"]) or refused

    def command(self, raw: Any) -> bool:
        """Check one command and hand it to the master; False if it was refused as malformed."""
        try:
            parsed = wire.parse_command(raw)
        except CommandError as exc:
            self.view.commands["refused"] += 1
            log.warning("control: refused a message on %s: %s", wire.channel(self.view.pool_id), exc)
            if exc.reply_to:
                self.reply(exc.reply_to, exc.command_id or "", False, f"refused: {exc}", {})
            return False
        args = dict(parsed.args)
        if parsed.command == "scale":
            args["prefer"] = self.workers.idle(self.view, args["list"])
        log.info("control: command %s %s from Redis", parsed.command, _shown_args(args))
        if self.to_master({"t": "command", "id": parsed.id, "command": parsed.command, "args": args}):
            self.pending[parsed.id] = parsed.reply_to
        else:
            self.reply(parsed.reply_to, parsed.id, False, "refused: the master is not reading its control pipe", {})
        return True

    def answered(self, message: dict[str, Any]) -> None:
        """The master's reply to a command: queue it for the sender."""
        reply_to = self.pending.pop(str(message.get("id")), None)
        if reply_to is not None:
            self.reply(reply_to, str(message["id"]), bool(message["ok"]), message["message"], message["changes"])

    def reply(self, reply_to: str, command_id: str, ok: bool, text: str, changes: dict[str, Any]) -> None:
        self.outbox.append((reply_to, wire.encode_reply(self.view.pool_id, command_id, ok, text, changes)))

    def deliver(self, connection: redis.Redis) -> None:
        """Push the waiting replies, each removed only once Redis took it."""
        while self.outbox:
            reply_to, data = self.outbox[0]
            pipe = connection.pipeline(transaction=False)
            pipe.rpush(reply_to, data)
            pipe.expire(reply_to, wire.REPLY_TTL)
            pipe.execute()
            self.outbox.pop(0)
