"""The control pipe between the master and its control child: one JSON object per datagram.

The pipe is a ``SOCK_SEQPACKET`` socket pair: each send is one whole message, so neither side
ever parses a partial one, and an end that closes is seen as EOF by the other.

Master to child (each carries ``seq``, one more than the last, so the child can see a gap):

* ``snapshot``: ``pool``, ``lists``, ``workers``, ``exits``, ``commands``: everything, sent when
  the child starts and when it asks (``resync``);
* ``pool``: the pool's fields that change (``state``); ``lists``: every list's counts, sent when
  any changed (its size grows with the lists, not the workers);
* ``spawn`` (``worker``), ``listening`` / ``retire`` (``pid``), ``exit`` (``pid``, ``reason``):
  one worker each, so the master's work per event does not grow with the pool;
* ``reply``: ``id``, ``ok``, ``message``, ``changes``: the outcome of a command.

Child to master: ``command`` (``id``, ``command``, ``args``), ``overrides`` (the stored overrides,
once at the child's start), ``resync``, ``autoscale`` (``list``, ``count``, ``prefer``: the count
the autoscaler wants for an autoscaled list, and its idle workers to retire first).

The master never blocks on the pipe: a send that would block is dropped and the next message
it sends is a snapshot instead (see :class:`Sender`).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from django_rq_pool.control.commands import CommandError, check_command

TO_CHILD = ("snapshot", "pool", "lists", "spawn", "listening", "retire", "exit", "reply")
TO_MASTER = ("command", "overrides", "resync", "autoscale")
MAX_MESSAGE = 1024 * 1024  # a snapshot of ~5,000 workers
MAX_TO_MASTER = 16 * 1024
BUFFER = 4 * MAX_MESSAGE
EXIT_REASONS = ("normal", "crash", "max_jobs", "memory", "stuck", "killed")


class ProtocolError(ValueError):
    """A message that does not follow this module's format."""


class Closed(EOFError):
    """The other end closed the pipe."""


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """(master end, child end), non-blocking, with room for a burst of messages."""
    master, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (master, child):
        end.setblocking(False)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    return master, child


def encode(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(data)} bytes is over {MAX_MESSAGE}")
    return data


def decode(data: bytes, kinds: tuple[str, ...]) -> dict[str, Any]:
    """One datagram as a message of one of ``kinds``; commands are checked (ProtocolError)."""
    limit = MAX_TO_MASTER if kinds == TO_MASTER else MAX_MESSAGE
    if len(data) > limit:
        raise ProtocolError(f"message of {len(data)} bytes is over {limit}")
    try:
        message = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or message.get("t") not in kinds:
        raise ProtocolError(f"not a message of kind {', '.join(kinds)}")
    if message["t"] == "command":
        if not isinstance(message.get("id"), str) or not 0 < len(message["id"]) <= 64:
            raise ProtocolError("a command needs an id of 1 to 64 characters")
        try:
            message["args"] = check_command(message.get("command"), message.get("args"))
        except CommandError as exc:
            raise ProtocolError(str(exc)) from None
    if message["t"] == "overrides" and not _overrides_ok(message.get("overrides")):
        raise ProtocolError("overrides must map a queue list to {count, configured}")
    if message["t"] == "autoscale":
        try:
            args = check_command("scale", {k: message.get(k) for k in ("list", "count", "prefer")})
        except CommandError as exc:
            raise ProtocolError(f"autoscale: {exc}") from None
        message.update(args)
    return message


def _overrides_ok(value: Any) -> bool:
    if not isinstance(value, dict) or len(value) > 1000:
        return False
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, dict):
            return False
        for field in ("count", "configured"):
            number = item.get(field)
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                return False
    return True


def receive(sock: socket.socket, kinds: tuple[str, ...]) -> list[dict[str, Any] | ProtocolError]:
    """Every message waiting on ``sock`` (a bad one as its ProtocolError); Closed at EOF."""
    found: list[dict[str, Any] | ProtocolError] = []
    while True:
        try:
            data = sock.recv(MAX_MESSAGE + 1)
        except (BlockingIOError, InterruptedError):
            return found
        except ConnectionResetError:
            data = b""
        if not data:
            if found:
                return found  # deliver what came before the EOF; the next call raises
            raise Closed()
        try:
            found.append(decode(data, kinds))
        except ProtocolError as exc:
            found.append(exc)


class Sender:
    """The master's end: numbered messages; after a send that would block, a snapshot next."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.seq = 0
        self.lost = False

    def send(self, message: dict[str, Any]) -> bool:
        """Send now or drop (never blocks); False when dropped."""
        self.seq += 1
        try:
            self.sock.send(encode({**message, "seq": self.seq}))
        except (BlockingIOError, InterruptedError):
            self.lost = True
            return False
        except OSError:
            return False  # the child is gone: it gets a snapshot when it is replaced
        return True
