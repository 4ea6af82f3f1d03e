"""What a POST from the page asks for, checked before anything is sent to a pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

COMMANDS = ("scale", "reset", "pause", "resume", "reload", "stop-workers", "quit")
CONFIRM = frozenset({"stop-workers", "quit"})  # these ask "are you sure?" before they are sent
MAX_FIELD = 1000


class BadAction(ValueError):
    """A POST the page would never send: the message says which field and what is expected."""


@dataclass(frozen=True)
class Action:
    pool: str
    command: str
    args: dict[str, Any] = field(default_factory=dict)
    confirmed: bool = False

    @property
    def needs_confirmation(self) -> bool:
        return self.command in CONFIRM and not self.confirmed

    @property
    def slot(self) -> str:
        """Where the reply is shown: next to the list's controls or the pool's buttons."""
        return f"{self.pool}|{self.args['list']}" if "list" in self.args else self.pool

    def describe(self) -> str:
        """``scale foo,bar to 3``, ``scale foo by +1``, ``reset foo``, ``pause``: for the log and the reply."""
        if self.command == "scale":
            if "count" in self.args:
                return f"scale {self.args['list']} to {self.args['count']}"
            return f"scale {self.args['list']} by {self.args['delta']:+d}"
        if self.command == "reset" and "list" in self.args:
            return f"reset {self.args['list']}"
        return self.command


def _field(data: QueryDict, name: str, required: bool = True) -> str:
    value = data.get(name, "").strip()
    if required and not value:
        raise BadAction(f"missing field {name!r}")
    if len(value) > MAX_FIELD:
        raise BadAction(f"field {name!r} is longer than {MAX_FIELD} characters")
    return value


def _integer(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadAction(f"field {name!r} must be a whole number, got {text!r}") from None


def parse(data: QueryDict) -> Action:
    """The action a POST asks for; :class:`BadAction` with a one-line reason for anything else."""
    pool = _field(data, "pool")
    command = _field(data, "command")
    if command not in COMMANDS:
        raise BadAction(f"unknown command {command!r}; expected one of {', '.join(COMMANDS)}")
    confirmed = data.get("confirmed") == "yes"
    queue_list = _field(data, "list", required=command == "scale")
    args: dict[str, Any] = {"list": queue_list} if queue_list else {}
    if command == "scale":
        delta, count = _field(data, "delta", required=False), _field(data, "count", required=False)
        if delta:
            args["delta"] = _integer(delta, "delta")
        elif count:
            args["count"] = _integer(count, "count")
            if args["count"] < 0:
                raise BadAction(f"field 'count' must be 0 or more, got {args['count']}")
        else:
            raise BadAction("scale needs 'count' (a number of workers) or 'delta' (+1 or -1)")
    elif command != "reset" and args:
        raise BadAction(f"{command} applies to the whole pool and takes no 'list'")
    return Action(pool=pool, command=command, args=args, confirmed=confirmed)


def outcome(reply: Any) -> str:
    """One line for a pool's reply: applied/refused with its reason, or no answer in time."""
    if reply.timed_out:
        return f"{reply.pool_id}: no reply in time (the pool may be gone)"
    verdict = "applied" if reply.ok else "refused"
    return f"{reply.pool_id}: {verdict}" + (f": {reply.message}" if reply.message else "")
