"""Process titles: only the master is ever titled ``rqpool-master``.

``setproctitle`` changes the title of the process that calls it, and a forked process keeps its
parent's title until it sets its own. A child that runs code before it does (rq forks its
scheduler before the worker first sets its title) would show its parent's title, so every
process the pool forks takes a title of its own inside ``fork()`` itself (an at-fork hook),
before any of its own code, rq's or the application's runs. Each then refines it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from setproctitle import setproctitle

_app = ""
_fork_title = ""
_installed = False


def install(app_name: str) -> None:
    """In the master, before its first fork: every process forked from now on is titled at once."""
    global _app, _fork_title, _installed
    _app = app_name
    _fork_title = titled("child", f"starting (forked by master {os.getpid()})")
    if not _installed:
        os.register_at_fork(after_in_child=_title_new_child)
        _installed = True


def titled(kind: str, text: str) -> str:
    """``rqpool-<kind>[<app>]: <text>``, the pool's own title format."""
    return f"rqpool-{kind}[{_app}]: {text}"


def set_title(kind: str, text: str) -> None:
    setproctitle(titled(kind, text))


def forks_become(title: str) -> None:
    """The title this process's future children take the moment they are forked."""
    global _fork_title
    _fork_title = title


@contextlib.contextmanager
def forking_as(title: str) -> Iterator[None]:
    """Children forked inside the block take ``title``; later ones the previous title again."""
    previous = _fork_title
    forks_become(title)
    try:
        yield
    finally:
        forks_become(previous)


def _title_new_child() -> None:
    if _fork_title:
        setproctitle(_fork_title)
