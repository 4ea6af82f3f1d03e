"""Real processes for the tests: a private redis-server and ``manage.py rqpool`` subprocesses.

Every process started here is ended by its own PID at teardown, even when a test fails:
pools carry a unique token in their environment, so workers and job children that outlive
their master (reparented elsewhere) are still found and killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import redis

from dev.bootstrap import redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
TEST_PROJECT = ROOT / "tests" / "testproject"
MANAGE = TEST_PROJECT / "manage.py"
TOKEN_VAR = "RQPOOL_TEST_TOKEN"
DEFAULT_TIMEOUT = 20.0


def wait_for(
    predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT, message: str = "condition", interval: float = 0.05
) -> Any:
    """Poll until predicate() is truthy; return its value or fail with message after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private redis-server on a free loopback port that tests can stop and start again."""

    def __init__(self, binary: str, workdir: Path, extra_args: tuple[str, ...] = ()):
        self.binary = binary
        self.workdir = workdir
        self.extra_args = extra_args  # e.g. ("--appendonly", "yes"): later arguments win
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/15"

    def client(self, db: int = 15) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--loglevel",
                "warning",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                return bool(self.client().ping())
            except redis.RedisError:
                return False

        wait_for(answers, 10, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


NO_TRACKING_USER = "no-tracking"
# Redis 6.2 cannot take one subcommand away (``-client|tracking`` needs Redis 7): there the user loses
# CLIENT and gets back every subcommand rq, redis-py and the pool send.
_CLIENT_BUT_TRACKING = ("id", "setname", "getname", "list", "info", "kill", "unblock", "setinfo")


def url_refusing_client_tracking(server: RedisServer, db: int = 15) -> str:
    """A URL for an ACL user of ``server`` that may run every command but CLIENT TRACKING.

    As behind a managed Redis or a proxy that does not pass client-side caching: that one command
    is refused with an error and everything else works.
    """
    admin = server.client()
    rule = ("reset", "on", ">pw", "~*", "&*", "+@all")
    try:
        admin.execute_command("ACL", "SETUSER", NO_TRACKING_USER, *rule, "-client|tracking")
    except redis.ResponseError:
        allowed = [f"+client|{sub}" for sub in _CLIENT_BUT_TRACKING]
        admin.execute_command("ACL", "SETUSER", NO_TRACKING_USER, *rule, "-client", *allowed)
    return f"redis://{NO_TRACKING_USER}:pw@127.0.0.1:{server.port}/{db}"


class Pool:
    """One ``manage.py rqpool`` subprocess in its own session, with its log captured to a file."""

    def __init__(
        self,
        redis_server: RedisServer,
        workdir: Path,
        config: str | None = None,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ):
        self.redis_server = redis_server
        self.workdir = workdir
        self.token = uuid.uuid4().hex
        self.log_path = workdir / f"pool-{self.token[:8]}.log"
        self.config_path: Path | None = None
        self.args = list(args)
        if config is not None:
            self.config_path = workdir / f"rq-pool-{self.token[:8]}.yml"
            self.config_path.write_text(config)
            self.args = ["-c", str(self.config_path), *self.args]
        self.env = {
            **os.environ,
            "TEST_REDIS_URL": redis_server.url,
            "PYTHONUNBUFFERED": "1",
            TOKEN_VAR: self.token,
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        self.prefix: tuple[str, ...] = ()  # a command that execs the master, e.g. setpriv

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, extra_args: tuple[str, ...] = ()) -> Pool:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.prefix, sys.executable, str(MANAGE), "rqpool", "-v", "2", *self.args, *extra_args],
            cwd=self.workdir,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self

    def run(self, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run to completion (for commands that exit by themselves)."""
        self.start()
        assert self.process is not None
        try:
            self.process.wait(timeout)
        finally:
            self.cleanup()
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, self.log(), "")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def write_config(self, text: str) -> None:
        assert self.config_path is not None
        self.config_path.write_text(text)

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait_exit(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"rqpool did not exit within {timeout}s; log:\n{self.log()[-4000:]}") from None

    def wait_log(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        try:
            wait_for(lambda: text in self.log(), timeout, f"log line {text!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; log:\n{self.log()[-4000:]}") from None

    # -- what the pool looks like from outside ------------------------------------------

    def worker_processes(self) -> list[psutil.Process]:
        """Direct children of the master that are rq workers (not janitors or job children)."""
        try:
            children = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return []
        workers = []
        for child in children:
            try:
                cmdline = child.cmdline()  # once: a process that exits in between has none
                if cmdline and cmdline[0].startswith("rq:worker:"):
                    workers.append(child)
            except psutil.Error:
                continue
        return workers

    def registered_workers(self) -> dict[str, dict[str, str]]:
        """rq worker hashes in Redis that belong to this master: name -> fields."""
        client = self.redis_server.client()
        prefix = "rq:worker:"
        found = {}
        for key in client.smembers("rq:workers"):
            key = key.decode()
            name = key[len(prefix) :]
            if f".{self.pid}." not in name:
                continue
            fields = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
            if fields:
                found[name] = fields
        return found

    def queue_lists(self) -> list[str]:
        """Sorted queue lists of the registered workers, as 'a,b' strings."""
        return sorted(fields.get("queues", "") for fields in self.registered_workers().values())

    def wait_workers(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
        """Wait until exactly ``count`` workers are registered and idle; return their queue lists."""

        def ready() -> list[str] | None:
            workers = self.registered_workers()
            idle = [f for f in workers.values() if f.get("state") == "idle"]
            if len(workers) == count and len(idle) == count and len(self.worker_processes()) == count:
                return sorted(f["queues"] for f in workers.values()) or ["(none)"]
            return None

        try:
            return wait_for(ready, timeout, f"{count} idle workers")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; registered: {self.queue_lists()}; log:\n{self.log()[-4000:]}") from None

    def processes(self) -> list[psutil.Process]:
        """Every live process of this pool, wherever it was reparented.

        A process is ours if its environment holds our token or its stdout/stderr is our log:
        setproctitle overwrites the memory /proc/PID/environ shows, so the master, the workers
        and their job children (all titled) are found by their inherited log file instead.
        """
        log_path = str(self.log_path.resolve())
        found = []
        for proc in psutil.process_iter(["pid"]):
            try:
                if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                if proc.environ().get(TOKEN_VAR) == self.token or _writes_to(proc.pid, log_path):
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def cleanup(self) -> None:
        """Kill the master and every process of this pool by PID; reap the master."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for _ in range(50):
            leftovers = self.processes()
            if not leftovers:
                break
            for proc in leftovers:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(leftovers, timeout=2)
        if hasattr(self, "_log"):
            self._log.close()


def _writes_to(pid: int, path: str) -> bool:
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                return True
    return False


def rqpoolctl(redis_url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``manage.py rqpoolctl`` against the registry at ``redis_url``; output captured as text."""
    env = {**os.environ, "TEST_REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(MANAGE), "rqpoolctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def done_records(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(item) for item in client.lrange("test:done", 0, -1)]


def send_to_group(pgid: int, signum: int) -> None:
    """What a terminal's Ctrl-C or ``kill -SIG -PGID`` does."""
    os.killpg(pgid, signum)


__all__ = [
    "Pool",
    "RedisServer",
    "done_records",
    "redis_server_binary",
    "rqpoolctl",
    "send_to_group",
    "signal",
    "wait_for",
]
