"""The control commands and the shape of their arguments, checked wherever a command is read.

The sender (``rqpoolctl``), the control child (a message from Redis) and the master (a message
from the child) all run the same checks, so junk is refused at the first hop with one clear line.
"""

from __future__ import annotations

from typing import Any

from django_rq_pool.config.loader import ConfigError, parse_queue_list

COMMANDS = ("scale", "reset", "pause", "resume", "reload", "stop-workers", "quit")
MAX_COUNT = 10_000  # far above any cap: bigger numbers are junk, not a scale


class CommandError(ValueError):
    """A command that cannot be run, phrased for the operator.

    Read from Redis, it also carries where to send the refusal (``reply_to``) when the message
    named a usable reply list, and the message's id.
    """

    reply_to: str | None = None
    command_id: str | None = None


def list_key(text: Any) -> str:
    """A queue list as 'foo,bar' (spaces dropped), or CommandError."""
    try:
        return ",".join(parse_queue_list(text, "command", None))
    except ConfigError as exc:
        raise CommandError(f"bad queue list {str(text)[:80]!r}: {exc.message}") from None


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_COUNT:
        raise CommandError(f"{what} must be an integer (at most {MAX_COUNT}), got {str(value)[:40]!r}")
    return value


def check_command(command: Any, args: Any) -> dict[str, Any]:
    """The arguments normalised (``list`` as 'a,b'), or CommandError saying what is wrong."""
    if command not in COMMANDS:
        raise CommandError(f"unknown command {str(command)[:40]!r}; known: {', '.join(COMMANDS)}")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise CommandError("arguments must be a mapping")
    allowed = {"scale": {"list", "count", "delta", "prefer"}, "reset": {"list"}}.get(command, set())
    unknown = set(args) - allowed
    if unknown:
        raise CommandError(f"{command} takes no argument {sorted(unknown)[0][:40]!r}")
    checked: dict[str, Any] = {}
    if "list" in args:
        checked["list"] = list_key(args["list"])
    if command == "scale":
        if "list" not in args:
            raise CommandError("scale needs a queue list, e.g. scale foo,bar=3")
        if ("count" in args) == ("delta" in args):
            raise CommandError("scale needs exactly one of count (N) or delta (+K / -K)")
        if "count" in args:
            checked["count"] = _integer(args["count"], "count")
            if checked["count"] < 0:
                raise CommandError(f"count must not be negative, got {checked['count']}")
        else:
            checked["delta"] = _integer(args["delta"], "delta")
            if checked["delta"] == 0:
                raise CommandError("delta must not be 0")
        if "prefer" in args:  # set by the control child: the list's idle workers, to stop first
            prefer = args["prefer"]
            if (
                not isinstance(prefer, list)
                or len(prefer) > MAX_COUNT
                or not all(isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31 for pid in prefer)
            ):
                raise CommandError("prefer must be a list of pids")
            checked["prefer"] = prefer
    return checked


def parse_scale(text: str) -> dict[str, Any]:
    """'foo,bar=3' / '=+1' / '=-2' -> scale arguments, or CommandError."""
    key, sep, value = text.rpartition("=")
    value = value.strip()
    if not sep or not key.strip() or not value:
        raise CommandError(f"expected LIST=N, LIST=+K or LIST=-K (e.g. foo,bar=3), got {text[:80]!r}")
    sign = value[0] if value[0] in "+-" else ""
    digits = value[len(sign) :]
    if not digits.isdigit():
        raise CommandError(f"{value[:40]!r} is not a count: write N, +K or -K")
    if sign:
        args: dict[str, Any] = {"list": key, "delta": int(value)}
    else:
        args = {"list": key, "count": int(digits)}
    check_command("scale", args)
    return args
