"""Jobs for the signal and process-tree tests: each says when it starts, so a test can act mid-job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from rq import get_current_job

from .jobs import DONE

STARTED = "test:started"


def _push(key: str, **fields: object) -> None:
    job = get_current_job()
    payload = {"job": job.id, "pid": os.getpid(), "worker_pid": os.getppid(), **fields}
    job.connection.rpush(key, json.dumps(payload))


def slow(token: str, seconds: float) -> str:
    """Announce the start, sleep, then record completion."""
    _push(STARTED, token=token)
    time.sleep(seconds)
    _push(DONE, token=token)
    return token


def stubborn(token: str, seconds: float) -> str:
    """In a SimpleWorker, block the signals the pool stops with: only SIGKILL ends this worker early."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGQUIT, signal.SIGUSR1, signal.SIGTERM, signal.SIGINT})
    _push(STARTED, token=token)
    time.sleep(seconds)
    _push(DONE, token=token)
    return token


def leave_orphan(token: str, seconds: float) -> int:
    """Double-fork a grandchild that outlives this job: the pool's master adopts and must reap it."""
    read_fd, write_fd = os.pipe()
    middle = os.fork()
    if middle == 0:
        grandchild = os.fork()
        if grandchild == 0:
            time.sleep(seconds)
            os._exit(0)
        os.write(write_fd, str(grandchild).encode())
        os._exit(0)
    os.waitpid(middle, 0)
    os.close(write_fd)
    grandchild = int(os.read(read_fd, 32))
    os.close(read_fd)
    _push(DONE, token=token, grandchild=grandchild)
    return grandchild


def detach(token: str, seconds: float) -> int:
    """Start a program in a session of its own that outlives this job (a daemon a job starts on purpose)."""
    process = subprocess.Popen(
        ["sleep", str(seconds)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _push(DONE, token=token, detached=process.pid)
    return process.pid
