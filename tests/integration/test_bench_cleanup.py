"""A bench stopped by a signal or by an error leaves nothing running (bench/cleanup.py).

Every process a bench starts stays in the bench's session (a contender gets a process group of its
own, not a session), so a bench started in a session of its own is found whole by the session id,
whatever the processes' titles or parents.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis

from bench.measure import workers

from ..harness import ROOT, wait_for


def stop_signals_by_default() -> None:
    """In the child before exec: as a shell starts a command (this runner may ignore SIGINT or SIGHUP)."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def session(sid: int) -> list[psutil.Process]:
    """Every live process of session ``sid``."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == sid and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (OSError, psutil.Error):
            continue
    return found


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def end_session(sid: int) -> None:
    """Kill by pid whatever a failed test left in the session."""
    leftovers = session(sid)
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(leftovers, timeout=5)


def idle_worker_pids(sid: int, count: int) -> list[int] | None:
    """The pids of ``count`` idle workers registered in the bench's redis-server, once there are as many."""
    for process in session(sid):
        with contextlib.suppress(psutil.Error):
            text = " ".join(process.cmdline())
            port = re.search(r"(?:--port |127\.0\.0\.1:)(\d+)", text) if "redis-server" in text else None
            if port:
                client = redis.Redis(port=int(port[1]), socket_timeout=2)
                try:
                    idle = [int(f["pid"]) for f in workers(client).values() if f["state"] == "idle"]
                except redis.RedisError:
                    return None
                finally:
                    client.close()
                return idle if len(idle) >= count else None
    return None


def bench_env() -> dict[str, str]:
    """The bench's environment, less the test project's settings (the contenders run the bench site's).

    Without preloading: the realistic jobs' packages are bench extras.
    """
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    return {**env, "BENCH_PRELOAD": "0"}


def test_sigterm_stops_the_contender_and_the_redis_server_and_exits_non_zero(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench", "--quick", "--only", "rqpool", "--phases", "startup"]
    command += ["--sizes", "2", "--state-mb", "5", "--out", str(tmp_path / "results")]
    log = tmp_path / "bench.log"
    with log.open("wb") as out:
        bench = subprocess.Popen(
            command,
            cwd=ROOT,
            env=bench_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=stop_signals_by_default,
        )
    try:
        worker_pids = wait_for(lambda: idle_worker_pids(bench.pid, 2), 60, "the contender's 2 idle workers", 0.05)
        started = {process.pid for process in session(bench.pid)}
        assert set(worker_pids) <= started, "the contender's workers are in the bench's session"
        assert len(started) >= 5, "the bench, its redis-server, the pool's master and 2 workers"

        os.kill(bench.pid, signal.SIGTERM)

        assert bench.wait(30) == 128 + signal.SIGTERM
        wait_for(lambda: not session(bench.pid), 10, "every process the bench started to be gone")
        assert all(gone(pid) for pid in started)
        last = log.read_text().strip().splitlines()[-1]
        assert last == "python -m bench: stopped by SIGTERM; everything it started is stopped"
    finally:
        end_session(bench.pid)
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)


FAKE_BENCH = """
import os, subprocess, sys, time
from bench import cleanup

class Sleeper:
    '''Stands for a contender or a redis-server: a process stopped by its pid; records the order.'''

    def __init__(self, role):
        self.role, self.process = role, subprocess.Popen(["sleep", "60"])

    def stop(self):
        self.process.kill()
        self.process.wait()
        with open(sys.argv[2], "a") as order:
            order.write(self.role + "\\n")

class Swallows:
    '''As an at-fork callback: Python prints an exception raised in it and drops it.'''

    def __init__(self, pids):
        self.pids = pids

    def __del__(self):
        print(*self.pids, flush=True)
        time.sleep(60)

@cleanup.cleans_up("fake bench")
def main():
    contender, server = Sleeper("contender"), Sleeper("server")
    cleanup.contender_started(contender)
    cleanup.server_started(server)
    forked = os.fork()  # as bench.dequeue forks its worker: found by the sweep
    if forked == 0:
        time.sleep(60)
        os._exit(0)
    pids = (contender.process.pid, server.process.pid, forked)
    if sys.argv[1] == "swallow":
        Swallows(pids)  # the signal comes in its __del__
    else:
        print(*pids, flush=True)
    if sys.argv[1] == "fail":
        raise RuntimeError("the run broke:\\nsecond line")
    time.sleep(60)

main()
"""


STOPPED = "fake bench: stopped by {}; everything it started is stopped"
FAILED = "fake bench: failed: RuntimeError: the run broke: second line; everything it started is stopped"


@pytest.mark.parametrize(
    ("mode", "send", "ignored", "status", "line"),
    [
        ("fail", (), (), 1, FAILED),
        ("wait", (signal.SIGHUP,), (), 129, STOPPED.format("SIGHUP")),
        ("wait", (signal.SIGINT,), (), 130, STOPPED.format("SIGINT")),
        # started ignored (nohup): the first signal is dropped, SIGTERM stops it
        ("wait", (signal.SIGHUP, signal.SIGTERM), (signal.SIGHUP,), 143, STOPPED.format("SIGTERM")),
        # its exception dropped by Python: the signal is sent again until the guard has it
        ("swallow", (signal.SIGTERM,), (), 143, STOPPED.format("SIGTERM")),
    ],
)
def test_an_error_or_a_stop_signal_stops_contenders_then_the_rest_then_servers(
    tmp_path: Path, mode: str, send: tuple[int, ...], ignored: tuple[int, ...], status: int, line: str
) -> None:
    def start_as_a_shell_would() -> None:
        stop_signals_by_default()
        for signum in ignored:
            signal.signal(signum, signal.SIG_IGN)

    script, order, out, err = (tmp_path / name for name in ("fake_bench.py", "order", "out", "err"))
    script.write_text(FAKE_BENCH)
    with out.open("wb") as stdout, err.open("wb") as stderr:
        fake = subprocess.Popen(
            [sys.executable, str(script), mode, str(order)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=start_as_a_shell_would,
        )
    try:
        pids = wait_for(lambda: [int(pid) for pid in out.read_text().split()], 20, "the fake bench's pids")
        for signum in send:
            os.kill(fake.pid, signum)
        assert fake.wait(20) == status
        printed = err.read_text().splitlines()
        assert printed[-1] == line
        assert len(printed) == 1 or (mode == "swallow" and "Exception ignored" in printed[0])
        assert order.read_text().splitlines() == ["contender", "server"]
        wait_for(lambda: all(gone(pid) for pid in pids), 10, "the sleepers and the forked child to be gone")
    finally:
        end_session(fake.pid)
        if fake.poll() is None:
            fake.kill()
            fake.wait(10)
