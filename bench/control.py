"""What the control plane costs: the Redis commands a pool's registry sends at idle, the idle CPU
of the master and of its control child, and ``status`` latency with 20 pools x 32 workers.

``python -m bench.control`` (about 3 minutes). Results: ``bench/results/control.json`` and a
Markdown table on stdout (copied into docs/control.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import redis

from .cleanup import cleans_up
from .measure import cpu_seconds, idle_names, wait_until
from .redis_server import own_server

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "bench" / "project" / "manage.py"
RESULTS = ROOT / "bench" / "results"
CONTROL_NAME = "rqpool-control"


def control_addresses(client: redis.Redis) -> set[str]:
    return {c["addr"] for c in client.client_list() if c.get("name") == CONTROL_NAME}


def count_commands(port: int, addresses: set[str], seconds: float) -> int:
    """Commands sent from ``addresses`` during ``seconds`` (MONITOR; a script's inner calls excluded)."""
    seen: list[str] = []
    monitor = redis.Redis(port=port).monitor()
    monitor.__enter__()

    def listen() -> None:
        try:
            for command in monitor.listen():
                seen.append(command.get("client_address", "") + ":" + str(command.get("client_port", "")))
        except (redis.RedisError, OSError, ValueError):
            return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    time.sleep(seconds)
    count = sum(1 for address in list(seen) if address in addresses)
    monitor.connection.disconnect()
    return count


def idle_costs(port: int, size: int, seconds: float, workdir: Path) -> dict[str, Any]:
    client = redis.Redis(port=port)
    config = workdir / f"rq-pool-{size}.yml"
    config.write_text(f"bench: {size}\n")
    env = {**os.environ, "BENCH_REDIS_URL": f"redis://127.0.0.1:{port}/0", "BENCH_STATE_MB": "5", "BENCH_PRELOAD": "0"}
    log = (workdir / f"pool-{size}.log").open("wb")
    pool = subprocess.Popen(
        [sys.executable, str(MANAGE), "rqpool", "-c", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: len(idle_names(client)) == size, 60, f"{size} idle workers")
        wait_until(lambda: client.scard("rqpool:pools") == 1, 20, "the pool's record")
        time.sleep(3)  # let start-up traffic settle
        master = psutil.Process(pool.pid)
        control = next(c for c in master.children() if c.cmdline()[0].startswith("rqpool-control["))
        before = (cpu_seconds(master.pid), cpu_seconds(control.pid))
        commands = count_commands(port, control_addresses(client), seconds)
        after = (cpu_seconds(master.pid), cpu_seconds(control.pid))
        return {
            "workers": size,
            "seconds": seconds,
            "registry_commands_per_s": round(commands / seconds, 2),
            "master_cpu_s_per_min": round((after[0] - before[0]) * 60 / seconds, 3),
            "control_child_cpu_s_per_min": round((after[1] - before[1]) * 60 / seconds, 3),
        }
    finally:
        pool.send_signal(3)  # QUIT
        pool.wait(60)
        client.flushall()
        log.close()


def status_latency(port: int, pools: int, workers: int, repeats: int) -> dict[str, Any]:
    """``read_status`` (what ``rqpoolctl status`` and the web page call) over simulated pools."""
    from django_rq_pool.control import client as control
    from django_rq_pool.control import wire
    from django_rq_pool.control.state import Details, PoolView
    from django_rq_pool.control.table import status_table

    connection = redis.Redis(port=port)
    lists = [f"queue{i},shared" for i in range(4)]
    for index in range(pools):
        view = PoolView()
        view.apply(
            {
                "t": "snapshot",
                "seq": 1,
                "pool": {"id": f"host{index}:{1000 + index}", "name": f"host{index}", "host": f"host{index}",
                         "pid": 1000 + index, "app": "bench", "version": "0", "source": "rq-pool.yml",
                         "state": "running", "started_at": time.time()},
                "lists": [{"queues": key.split(","), "key": key, "configured": workers // 4, "override": None,
                           "desired": workers // 4, "paused": False, "backoff": None, "min": None, "max": None}
                          for key in lists],
                "workers": [{"pid": 10_000 + w, "name": f"host{index}.{1000 + index}.{w}.abcdef",
                             "list": lists[w % 4], "started_at": time.time(), "listening": True, "stopping": False}
                            for w in range(workers)],
            }
        )  # fmt: skip
        details = {10_000 + w: Details("busy" if w % 3 else "idle", f"job-{w}", w, 50 * 2**20) for w in range(workers)}
        pool_id = view.pool["id"]
        connection.set(wire.record_key(pool_id), json.dumps(view.document(details, time.time())), ex=60)
        connection.sadd(wire.POOLS, pool_id)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        document = control.read_status(connection)
        status_table(document)
        timings.append((time.perf_counter() - started) * 1000)
    assert len(document["pools"]) == pools
    timings.sort()
    return {
        "pools": pools,
        "workers_per_pool": workers,
        "record_bytes": len(connection.get(wire.record_key("host0:1000"))),
        "median_ms": round(statistics.median(timings), 2),
        "p95_ms": round(timings[int(len(timings) * 0.95) - 1], 2),
    }


@cleans_up("python -m bench.control")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.control", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="idle window per pool size (default 30)")
    parser.add_argument("--sizes", default="1,8,32", help="worker counts (default 1,8,32)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(MANAGE.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchsite.settings")
    with own_server("rqpool-control-bench-") as server:
        idle = [idle_costs(server.port, int(size), args.seconds, server.workdir) for size in args.sizes.split(",")]
        latency = status_latency(server.port, 20, 32, 200)
    results = {"idle": idle, "status": latency, "machine": {"cpus": os.cpu_count()}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "control.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| workers | registry commands/s | master CPU s/min | control child CPU s/min |")
    print("| ---: | ---: | ---: | ---: |")
    for row in idle:
        print(
            f"| {row['workers']} | {row['registry_commands_per_s']} | {row['master_cpu_s_per_min']} "
            f"| {row['control_child_cpu_s_per_min']} |"
        )
    print(
        f"\nstatus with {latency['pools']} pools x {latency['workers_per_pool']} workers: "
        f"median {latency['median_ms']} ms, p95 {latency['p95_ms']} ms (record {latency['record_bytes']} bytes)"
    )


if __name__ == "__main__":
    main()
