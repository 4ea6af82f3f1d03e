#!/usr/bin/env python3
"""Run the test suite: ``python3 runtests.py [--versions oldest|newest] [pytest arguments]``.

The first run creates ``.venv`` and installs everything; the tests start their own
redis-server and use the PostgreSQL at 127.0.0.1:5432 (database ``test``). ``--versions``
runs them instead in ``.venv-oldest`` or ``.venv-newest``: the oldest or newest supported
versions that ``setup.cfg`` declares (see ``dev/versions.py``).
"""

import sys
from pathlib import Path

from dev.bootstrap import ensure_venv


def split_versions(args: list[str]) -> tuple[str | None, list[str]]:
    """Take ``--versions EDGE`` (or ``--versions=EDGE``) out of the arguments meant for pytest."""
    for index, arg in enumerate(args):
        if arg.startswith("--versions="):
            return arg.split("=", 1)[1], args[:index] + args[index + 1 :]
        if arg == "--versions" and index + 1 < len(args):
            return args[index + 1], args[:index] + args[index + 2 :]
    return None, args


if __name__ == "__main__":
    ensure_venv(Path(__file__).resolve())
    edge, pytest_args = split_versions(sys.argv[1:])
    if edge is not None:
        from dev.bootstrap import redis_server_binary
        from dev.versions import EDGES, run

        if edge not in EDGES:
            sys.exit(f"--versions: expected one of {', '.join(EDGES)}, not {edge!r}")
        sys.exit(run(edge, pytest_args, redis_server_binary(oldest=edge == "oldest")))
    import pytest

    sys.exit(pytest.main(["-p", "no:cacheprovider", *(pytest_args or ["tests"])]))
