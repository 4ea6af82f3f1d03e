"""What the suite reads from outside: Redis worker states, commands and counters, smaps_rollup, CPU times."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psutil
import redis

POLL = 0.01


@dataclass(frozen=True)
class Memory:
    """Totals over a set of processes, in MiB."""

    pss: float
    uss: float
    processes: int


def smaps_rollup(pid: int) -> dict[str, int]:
    """Fields of /proc/PID/smaps_rollup in kB."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields


def total_memory(pids: Iterable[int]) -> Memory:
    """Total PSS and USS (Private_Clean + Private_Dirty) of live processes."""
    pss = uss = count = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = smaps_rollup(pid)
            pss += fields.get("Pss", 0)
            uss += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
            count += 1
    return Memory(pss / 1024, uss / 1024, count)


def tagged_processes(token: str, variable: str) -> list[psutil.Process]:
    """Every live process whose environment carries our token (masters, workers, job children, schedulers)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(variable) == token and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def tree_cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    """CPU seconds of live processes plus their reaped children (a worker's job children, once waited for).

    Unlike a rate, this hardly depends on what else the machine runs: on a shared, loaded machine
    it is the figure two batches of one run can be compared by.
    """
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def workers(client: redis.Redis) -> dict[str, dict[str, str]]:
    """rq worker hashes in Redis: name -> {state, pid}."""
    names = [n.decode() for n in client.smembers("rq:workers")]
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hmget(name, "state", "pid")
        values = pipe.execute()
    return {
        name.split(":", 2)[2]: {"state": (state or b"").decode(), "pid": (pid or b"0").decode()}
        for name, (state, pid) in zip(names, values, strict=True)
        if state is not None
    }


def stat(client: redis.Redis, name: str) -> int:
    """One counter of INFO stats (total_commands_processed, total_connections_received, ...)."""
    return int(client.info("stats")[name])


def total_commands(client: redis.Redis, name: str | None = None) -> int:
    """Commands Redis has run (INFO commandstats: a script's own commands too), all or of one name."""
    stats = client.info("commandstats")
    return sum(int(entry["calls"]) for key, entry in stats.items() if name is None or key == f"cmdstat_{name}")


class Monitor(threading.Thread):
    """Every command Redis runs, from MONITOR: its server timestamp, its text and its client type."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url, socket_timeout=None)
        self.lines: list[tuple[float, str, str]] = []  # time, command, client type ("lua": a script's own)
        self.stop = False

    def run(self) -> None:
        with self.client.monitor() as monitor:
            for event in monitor.listen():
                if self.stop:
                    return
                self.lines.append((float(event["time"]), event["command"], event.get("client_type", "")))

    def first(self, pattern: str, job_id: str) -> float | None:
        """The first command (a script's own commands too, in lower case) matching ``pattern`` naming the job."""
        regex = re.compile(pattern, re.IGNORECASE)
        for at, command, _ in self.lines:
            if job_id in command and regex.search(command):
                return at
        return None


def idle_names(client: redis.Redis, exclude: set[str] = frozenset()) -> set[str]:
    return {name for name, fields in workers(client).items() if fields["state"] == "idle" and name not in exclude}


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = POLL) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
