"""What travels through Redis: key names, command messages and replies.

* ``rqpool:pools``: a set of pool ids; a member whose record expired is dropped by readers;
* ``rqpool:pool:<id>``: the pool's record (JSON), written with a TTL of three heartbeats;
* ``rqpool:control:<id>``: the pub/sub channel a pool's control child listens on;
* ``rqpool:overrides:<name>``: a hash, queue list -> ``{"count", "configured"}`` (no TTL);
* ``rqpool:reply:<uuid>``: a list the sender waits on (BLPOP); each pool pushes one reply.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from django_rq_pool.control.commands import CommandError, check_command

PREFIX = "rqpool"
POOLS = f"{PREFIX}:pools"
MAX_COMMAND_BYTES = 4096
REPLY_TTL = 60  # seconds a reply nobody read stays in Redis


def record_key(pool_id: str) -> str:
    return f"{PREFIX}:pool:{pool_id}"


def channel(pool_id: str) -> str:
    return f"{PREFIX}:control:{pool_id}"


def overrides_key(name: str) -> str:
    return f"{PREFIX}:overrides:{name}"


def reply_key(token: str) -> str:
    return f"{PREFIX}:reply:{token}"


@dataclass(frozen=True)
class CommandMessage:
    """One command as published to a pool's channel."""

    command: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    reply_to: str = ""

    def encode(self) -> bytes:
        data = json.dumps({"id": self.id, "command": self.command, "args": self.args, "reply_to": self.reply_to})
        return data.encode()


def parse_command(raw: Any) -> CommandMessage:
    """A message read from the channel, checked; CommandError with the reason otherwise.

    The error carries ``reply_to`` when the message named a usable one, so a refusal still
    reaches its sender.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    if not isinstance(raw, bytes):
        raise CommandError("not a byte string")
    if len(raw) > MAX_COMMAND_BYTES:
        raise CommandError(f"message of {len(raw)} bytes is over {MAX_COMMAND_BYTES}")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise CommandError("message is not JSON") from None
    if not isinstance(data, dict):
        raise CommandError("message is not a JSON object")
    reply_to = data.get("reply_to")
    usable = isinstance(reply_to, str) and reply_to.startswith(f"{PREFIX}:reply:") and len(reply_to) <= 100
    ident = data.get("id")
    try:
        if not isinstance(ident, str) or not 0 < len(ident) <= 64:
            raise CommandError("message needs an id of 1 to 64 characters")
        if not usable:
            raise CommandError(f"message needs reply_to of the form {PREFIX}:reply:<token>")
        args = check_command(data.get("command"), data.get("args"))
    except CommandError as exc:
        exc.reply_to = reply_to if usable else None
        exc.command_id = ident if isinstance(ident, str) else None
        raise
    return CommandMessage(data["command"], args, str(ident), str(reply_to))


def text(value: bytes | str) -> str:
    """A Redis reply as text, whether the connection decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else value


def encode_reply(pool_id: str, command_id: str, ok: bool, message: str, changes: dict[str, Any]) -> bytes:
    return json.dumps({"pool_id": pool_id, "id": command_id, "ok": ok, "message": message, "changes": changes}).encode()
