"""The pidfile: refuse a live owner, replace a stale one, write atomically, never follow a symlink.

A new pidfile is created with ``link()`` from a private temporary file, so two pools starting at
once cannot both win; a stale or planted file is replaced with ``rename()``, which replaces a
symlink itself instead of writing through it. At exit the file is removed only if it still holds
our pid (a hot-swapped successor may own it by then).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class PidFileError(Exception):
    """The pidfile names a live process, or cannot be written."""


def read_pid(path: Path) -> int | None:
    """The pid stored at ``path``; None if absent, unreadable, a symlink or not a number."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as handle:
            text = handle.read(64).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def is_alive(pid: int) -> bool:
    """True if a process with this pid exists (EPERM: it exists, owned by someone else)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_owner(path: Path) -> int | None:
    """The pid in the file if that process is alive and is not us."""
    pid = read_pid(path)
    if pid is None or pid == os.getpid() or not is_alive(pid):
        return None
    return pid


class PidFile:
    """One pool's pidfile; :meth:`write` claims it, :meth:`release` gives it up."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).absolute()
        self.written_pid: int | None = None

    def check(self) -> None:
        """Refuse early (before daemonizing) if another live pool holds the file."""
        owner = live_owner(self.path)
        if owner is not None:
            raise PidFileError(f"pidfile {self.path} holds pid {owner}, which is alive: is a pool already running?")

    def write(self, replace_live: bool = False) -> None:
        """Write our pid; replace a stale, invalid or symlinked file; refuse a live owner unless told."""
        pid = os.getpid()
        temp = self.path.with_name(f".{self.path.name}.{pid}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"{pid}\n")
            try:
                os.link(temp, self.path, follow_symlinks=False)
            except FileExistsError:
                owner = live_owner(self.path)
                if owner is not None and not replace_live:
                    raise PidFileError(
                        f"pidfile {self.path} holds pid {owner}, which is alive: is a pool already running?"
                    ) from None
                os.replace(temp, self.path)
        except OSError as exc:
            raise PidFileError(f"cannot write pidfile {self.path}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        self.written_pid = pid

    def release(self) -> None:
        """Remove the file if (and only if) it still holds the pid we wrote, and we are that process."""
        if self.written_pid is None or self.written_pid != os.getpid():
            return
        if read_pid(self.path) == self.written_pid:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        self.written_pid = None
