"""The pidfile: claimed atomically, its owner proven by a lock, never written through a link.

The master holds an exclusive ``flock`` on its pidfile for as long as it runs, so:

* a claim is atomic: of several pools claiming the same (absent or stale) file at once, only the
  one that gets the lock writes its pid; the others see a live owner;
* a live owner is proven: a locked file belongs to a running pool, and a file nobody locks is
  stale whatever process its pid names now (a pid is reused, a lock is not). ``--hot-swap``
  therefore never signals an unrelated process that inherited the pid;
* the lock goes with the master, even on SIGKILL: every process it forks closes its copy of the
  descriptor at once (a fork hook), so a worker that outlives its master does not hold it.

A pool of an older version holds no lock: its file still counts as live while its pid is a
process titled ``rqpool-master[...]``. A symlink or a hard link planted at the path is replaced,
never written through. A hot swap writes a new, locked file and renames it over the path. At
exit the file is removed only if it is still ours (a hot-swapped successor may own it by then).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import psutil

LOCK_RETRY = 1.0  # seconds a claimer retries a lock that another process may only be probing
MAX_ATTEMPTS = 100  # replacing planted links: give up rather than loop against an attacker
MASTER_TITLE = "rqpool-master["

_held: set[int] = set()  # descriptors holding our pidfile locks, closed in every forked child


def _close_held_in_child() -> None:
    for fd in _held:
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def hold(fd: int) -> None:
    """Keep this lock's descriptor out of every process forked from now on (workers, daemons)."""
    _held.add(fd)


def let_go(fd: int) -> None:
    """Close a held lock's descriptor, which drops the lock."""
    _held.discard(fd)
    with contextlib.suppress(OSError):
        os.close(fd)


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
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


def is_alive(pid: int) -> bool:
    """True if a process with this pid exists (EPERM: it exists, owned by someone else)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_locked(path: Path) -> bool:
    """True if a running pool holds the lock on the file at ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)
    return False


def _titled_master(pid: int) -> bool:
    """A pool of an older version (no lock): its process title says it is an rqpool master."""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return bool(cmdline) and cmdline[0].startswith(MASTER_TITLE)


def live_owner(path: Path) -> int | None:
    """The pid of the running pool that owns the file; None if it is absent, stale, or ours."""
    deadline = time.monotonic() + LOCK_RETRY
    while True:
        pid = read_pid(path)
        if is_locked(path):
            if pid is not None:
                return None if pid == os.getpid() else pid
            if time.monotonic() > deadline:
                return None  # locked but empty for a second: the claim itself reports the owner
            time.sleep(0.01)  # a claimer holds the lock and is writing its pid
            continue
        if pid is not None and pid != os.getpid() and is_alive(pid) and _titled_master(pid):
            return pid
        return None


def open_regular(path: Path) -> int:
    """Open (or create) the file at the path; a symlink, hard link or special file there is removed."""
    for _ in range(MAX_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # a symlink: replace the link, never write through it
            continue
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
            return fd
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a hard link to someone's file, or a FIFO: not ours to write
    raise PidFileError(f"cannot claim {path}: something keeps planting links there")


def at_path(fd: int, path: Path) -> bool:
    """The open file is still the one at the path (not unlinked or replaced since)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
    except OSError:
        return False


def lock_regular(path: Path, busy: Callable[[], None]) -> int:
    """Open the regular file at the path and lock it exclusively; the locked descriptor.

    ``busy()`` runs each time another process holds the lock and raises to give up; the path
    replaced while we locked is opened again, so the lock is always on the file at the path.
    """
    for _ in range(MAX_ATTEMPTS * 100):
        fd = open_regular(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            busy()
            time.sleep(0.01)
            continue
        if at_path(fd, path):
            return fd
        os.close(fd)
    raise PidFileError(f"cannot lock {path}: it keeps being replaced")


class PidFile:
    """One pool's pidfile; :meth:`write` claims it, :meth:`release` gives it up."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).absolute()
        self.written_pid: int | None = None
        self._fd = -1

    def check(self) -> None:
        """Refuse early (before daemonizing) if another live pool holds the file."""
        owner = live_owner(self.path)
        if owner is not None:
            raise PidFileError(self._live_message(owner))

    def _live_message(self, owner: int | None) -> str:
        who = f"pid {owner}" if owner is not None else "a pid"
        return f"pidfile {self.path} holds {who}, which is alive: is a pool already running?"

    def write(self, replace_live: bool = False) -> None:
        """Claim the file and write our pid; ``replace_live``: take it over from a live pool (hot swap)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._take_over() if replace_live else self._claim()
        except OSError as exc:
            raise PidFileError(f"cannot write pidfile {self.path}: {exc.strerror or exc}") from None
        self._fd = fd
        hold(fd)
        self.written_pid = os.getpid()

    def _claim(self) -> int:
        """Lock the file at the path (created if absent) and write our pid into it; never two winners."""
        deadline = time.monotonic() + LOCK_RETRY

        def busy() -> None:  # a probe (is_locked) holds it for an instant; an owner holds it for good
            if time.monotonic() > deadline:
                raise PidFileError(self._live_message(read_pid(self.path)))

        fd = lock_regular(self.path, busy)
        owner = read_pid(self.path)
        if owner is not None and owner != os.getpid() and is_alive(owner) and _titled_master(owner):
            os.close(fd)
            raise PidFileError(self._live_message(owner))
        self._write_pid(fd)
        return fd

    def _take_over(self) -> int:
        """A new locked file renamed over the path: the old owner keeps its lock on the old file."""
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._write_pid(fd)
            os.replace(temp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        return fd

    @staticmethod
    def _write_pid(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Remove the file if (and only if) it is still ours and holds our pid; drop the lock."""
        if self.written_pid is None or self.written_pid != os.getpid():
            return
        if at_path(self._fd, self.path) and read_pid(self.path) == self.written_pid:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        let_go(self._fd)
        self._fd = -1
        self.written_pid = None
