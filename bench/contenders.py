"""The four ways to run N workers that the suite compares, each started and stopped by PID."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from . import cleanup
from .measure import tagged_processes

PROJECT = Path(__file__).resolve().parent / "project"
MANAGE = str(PROJECT / "manage.py")
TOKEN_VAR = "RQPOOL_BENCH_TOKEN"


def contender_env(redis_url: str, state_mb: float | str, **extra: str) -> dict[str, str]:
    """The environment every contender runs in: the bench's Redis, the jobs' state size, unbuffered output."""
    return {
        **os.environ,
        "BENCH_REDIS_URL": redis_url,
        "BENCH_STATE_MB": str(state_mb),
        **extra,
        "PYTHONUNBUFFERED": "1",
    }


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@dataclass(frozen=True)
class Contender:
    """How to launch N workers on the queue ``bench``."""

    key: str
    label: str
    kind: str  # "rqpool", "rqworker-pool" or "separate"
    worker_class: str | None = None
    env: tuple[tuple[str, str], ...] = ()  # extra environment, e.g. a setting turned off
    options: str = ""  # extra per-list options for rqpool, as YAML lines ("  name: value\n")
    by_default: bool = True  # False: only run when --only names it

    def commands(self, count: int, workdir: Path) -> list[list[str]]:
        python = sys.executable
        if self.kind == "rqpool":
            config = workdir / f"rq-pool-{self.key}-{count}.yml"
            worker_class = f"  worker_class: {self.worker_class}\n" if self.worker_class else ""
            config.write_text(f"bench:\n  count: {count}\n{worker_class}{self.options}")
            return [[python, MANAGE, "rqpool", "-c", str(config), "-v", "0"]]
        if self.kind == "rqworker-pool":
            return [[python, MANAGE, "rqworker-pool", "bench", "--num-workers", str(count), "-v", "0"]]
        return [self.single_worker_command() for _ in range(count)]

    def single_worker_command(self) -> list[str]:
        return [sys.executable, MANAGE, "rqworker", "bench", "-v", "0"]

    @property
    def has_master(self) -> bool:
        return self.kind != "separate"


CONTENDERS = (
    Contender("rqpool", "rqpool", "rqpool"),
    Contender("rqworker-pool", "django-rq rqworker-pool", "rqworker-pool"),
    Contender("separate", "N x rqworker", "separate"),
    Contender("rqpool-simple", "rqpool, SimpleWorker list", "rqpool", "rq.worker.SimpleWorker"),
    Contender("rqpool-nowarm", "rqpool, warming off", "rqpool", env=(("BENCH_WARM", "0"),), by_default=False),
    Contender(
        "rqpool-prefork", "rqpool, prefork_job_child", "rqpool", options="  prefork_job_child: true\n", by_default=False
    ),
)


@dataclass
class Running:
    """A launched contender: its top-level processes and the token that finds all their descendants."""

    contender: Contender
    env: dict[str, str]
    log: Path
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    roots: list[subprocess.Popen] = field(default_factory=list)

    @classmethod
    def launch(cls, contender: Contender, count: int, workdir: Path, env: dict[str, str]) -> Running:
        running = cls(contender, env, workdir / f"{contender.key}-{count}.log")
        for command in contender.commands(count, workdir):
            running.start(command)
        return running

    def start(self, command: list[str]) -> None:
        cleanup.contender_started(self)  # before the fork: a signal may come while it happens
        self.roots.append(self._popen(command))

    def _popen(self, command: list[str]) -> subprocess.Popen:
        with self.log.open("ab") as log:
            return subprocess.Popen(
                command,
                cwd=PROJECT,
                env={**self.env, **dict(self.contender.env), TOKEN_VAR: self.token},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group (no Ctrl-C from the terminal), but the bench's session: with the
                # kernel's autogroup scheduling each session gets one share of the CPU, which would
                # give N separate workers N shares against a pool's one on a loaded machine.
                # (Python 3.11's process_group=0; the bench runs on 3.10 too.)
                preexec_fn=os.setpgrp,
            )

    @property
    def master_pid(self) -> int:
        return self.roots[0].pid

    def processes(self) -> list[psutil.Process]:
        """The top-level processes and all their descendants (job children, schedulers).

        Not found by the token: setproctitle overwrites /proc/PID/environ with the long titles.
        """
        found = []
        for process in self.roots:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(process.pid)
                found += [root, *root.children(recursive=True)]
        return found

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes()]

    def restart_separate_worker(self, pid: int) -> None:
        """What a supervisor does for a separate worker that died: start another one at once."""
        for index, process in enumerate(self.roots):
            if process.pid == pid:
                process.wait(10)
                self.roots[index] = self._popen(self.contender.single_worker_command())
                return
        raise LookupError(f"no separate worker with pid {pid}")

    def stop(self) -> None:
        """SIGKILL the whole tree and whatever carries the token: how it stops is not measured, and Redis is
        flushed before the next run."""
        tree = self.processes()  # psutil refuses to signal a pid that was reused since
        for _ in range(20):
            leftovers = [p for p in tree if alive(p)]
            leftovers += [p for p in tagged_processes(self.token, TOKEN_VAR) if p not in tree]
            if not leftovers:
                break
            for proc in leftovers:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(leftovers, timeout=2)
        for process in self.roots:
            if process.poll() is None:
                process.kill()
            process.wait(5)
        cleanup.contender_stopped(self)
