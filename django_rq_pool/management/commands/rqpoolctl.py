"""``manage.py rqpoolctl``: see and steer every pool through the control plane (docs/control.md)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import redis
from django.core.management.base import BaseCommand, CommandParser

from django_rq_pool.config.redact import redact_text
from django_rq_pool.control import client
from django_rq_pool.control.commands import CommandError, list_key, parse_scale
from django_rq_pool.control.table import status_table

EXIT_REFUSED = 1
EXIT_USAGE = 2
ACTIONS = ("scale", "reset", "pause", "resume", "reload", "stop-workers", "quit")


class Command(BaseCommand):
    help = "Show every live pool (status) or send a command to one pool, every pool of a name, or all."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{status," + ",".join(ACTIONS) + "}")
        status = sub.add_parser("status", help="table of every live pool, grouped by host")
        status.add_argument("--json", action="store_true", help="print the registry document")
        status.add_argument("--watch", action="store_true", help="refresh in place every --interval seconds")
        status.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default: 2)")
        helps = {
            "scale": "set a list's count: LIST=N, LIST=+K or LIST=-K (an override, kept under the pool's name)",
            "reset": "drop the override of LIST, or every override",
            "pause": "workers finish their job and take no new one (USR2)",
            "resume": "paused workers take jobs again (CONT)",
            "reload": "reload the configuration (HUP)",
            "stop-workers": "stop every worker; reload starts them again (WINCH)",
            "quit": "graceful stop of the pool (QUIT)",
        }
        for action in ACTIONS:
            command = sub.add_parser(action, help=helps[action])
            if action == "scale":
                command.add_argument("change", metavar="LIST=N|+K|-K")
            if action == "reset":
                command.add_argument("list", nargs="?", metavar="LIST")
            target = command.add_mutually_exclusive_group(required=True)
            target.add_argument("--pool", metavar="ID_OR_NAME", help="a pool id, or a name (every pool with it)")
            target.add_argument("--all", action="store_true", help="every live pool")
            command.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for replies (default: 2)")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            sys.exit(self._run(opts))
        except (CommandError, client.UnknownPool) as exc:
            self._fail(str(exc), EXIT_REFUSED if isinstance(exc, client.UnknownPool) else EXIT_USAGE)
        except (redis.RedisError, OSError) as exc:
            self._fail(
                f"cannot reach the registry's Redis ({client.control_queue_name()!r} queue): {redact_text(str(exc))}"
            )
        except KeyboardInterrupt:
            sys.exit(130)

    def _fail(self, message: str, status: int = EXIT_REFUSED) -> None:
        sys.stderr.write(f"rqpoolctl: {message}\n")
        sys.exit(status)

    def _run(self, opts: dict[str, Any]) -> int:
        action = opts["action"]
        if action == "status":
            return self._status(opts)
        args: dict[str, Any] = {}
        if action == "scale":
            args = parse_scale(opts["change"])
        elif action == "reset" and opts["list"]:
            args = {"list": list_key(opts["list"])}
        replies = client.send_command(
            action, pool=opts["pool"], all_pools=opts["all"], args=args, timeout=opts["timeout"]
        )
        for reply in replies:
            verdict = "applied" if reply.ok else ("timed out" if reply.timed_out else "refused")
            self.stdout.write(f"{reply.pool_id}: {verdict}: {reply.message}\n")
        return 0 if all(reply.ok for reply in replies) else EXIT_REFUSED

    def _status(self, opts: dict[str, Any]) -> int:
        while True:
            document = client.read_status()
            text = json.dumps(document, indent=2, sort_keys=True) + "\n" if opts["json"] else status_table(document)
            if opts["watch"]:
                self.stdout.write("\x1b[H\x1b[2J" + text)  # home, clear: refresh in place
                self.stdout.flush()
                time.sleep(max(0.2, opts["interval"]))
                continue
            self.stdout.write(text)
            return 0
