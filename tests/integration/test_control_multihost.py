"""The control plane across three hosts, for real: three pools, each in its own UTS and network
namespace (its own hostname, its own link to Redis over a veth pair), against one private
redis-server bound to the host ends of those links.

Needs root (namespaces, veth). Outside CI it skips with the reason when they are not permitted;
with CI=true it fails instead. Namespaces and links are removed even when the test fails.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from django_rq_pool.control import client, wire

from ..conftest import IN_CI
from ..harness import Pool, RedisServer, redis_server_binary, rqpoolctl, wait_for

HEARTBEAT = 1.0
TTL = 3 * HEARTBEAT


@dataclass
class Host:
    name: str  # hostname inside its UTS namespace, and its pool's name
    netns: str
    link: str  # the host end of its veth pair: down = the host is cut off
    redis_address: str  # the host end's address, where Redis listens for it


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"multi-host test needs network namespaces in CI: {reason}")
    pytest.skip(f"network namespaces are not permitted here ({reason})")


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None:
        _unavailable("needs root, ip and unshare")
    tag = f"{random.randrange(16**4):04x}"
    subnet = random.randrange(1, 250)
    made: list[Host] = []
    try:
        for index in range(1, 4):
            host = Host(f"host{index}", f"rqpool-{tag}-{index}", f"rqh{tag}{index}", f"10.231.{subnet}.{4 * index + 1}")
            inner = f"rqn{tag}{index}"
            result = _ip("netns", "add", host.netns, check=False)
            if result.returncode != 0:
                _unavailable(result.stderr.strip())
            made.append(host)
            _ip("link", "add", host.link, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", host.netns)
            _ip("addr", "add", f"{host.redis_address}/30", "dev", host.link)
            _ip("link", "set", host.link, "up")
            _ip("-n", host.netns, "addr", "add", f"10.231.{subnet}.{4 * index + 2}/30", "dev", inner)
            _ip("-n", host.netns, "link", "set", inner, "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
        yield made
    finally:
        for host in made:
            _ip("netns", "del", host.netns, check=False)  # takes its end of the veth pair with it
            _ip("link", "del", host.link, check=False)


@pytest.fixture
def shared_redis(hosts: list[Host], tmp_path: Path) -> Iterator[RedisServer]:
    binary = redis_server_binary()
    if binary is None:
        _unavailable("no redis-server")
    addresses = [host.redis_address for host in hosts]
    server = RedisServer(binary, tmp_path, ("--bind", "127.0.0.1", *addresses, "--protected-mode", "no"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def start_pool(host: Host, server: RedisServer, workdir: Path) -> Pool:
    pool = Pool(
        server,
        workdir,
        "foo: 1\n",
        args=("--name", host.name),
        env={"TEST_REDIS_URL": f"redis://{host.redis_address}:{server.port}/15", "TEST_RQ_POOL_HEARTBEAT": "1.0"},
    )
    # Its own network, then its own hostname; each step execs the next, so the master keeps this pid.
    pool.prefix = (
        "ip",
        "netns",
        "exec",
        host.netns,
        "unshare",
        "--uts",
        "sh",
        "-c",
        f'hostname {host.name} && exec "$0" "$@"',
    )
    return pool.start()


def live(server: RedisServer) -> dict[str, dict]:
    """Pool name -> record, as every client reads it."""
    return {pool["name"]: pool for pool in client.read_status(server.client())["pools"]}


def test_three_pools_on_three_hosts_one_registry(hosts: list[Host], shared_redis: RedisServer, tmp_path: Path):
    pools = {host.name: start_pool(host, shared_redis, tmp_path) for host in hosts}
    try:
        wait_for(lambda: len(live(shared_redis)) == 3, 30, "three pools in the registry")
        for name, pool in pools.items():
            wait_for(lambda pool=pool: len(pool.worker_processes()) == 1, 30, f"{name}'s worker")
        records = live(shared_redis)
        assert {name: record["host"] for name, record in records.items()} == {h.name: h.name for h in hosts}
        assert {record["id"] for record in records.values()} == {f"{n}:{p.pid}" for n, p in pools.items()}

        shown = rqpoolctl(shared_redis.url, "status")
        assert shown.returncode == 0
        for host in hosts:
            assert f"\n{host.name}\n  {host.name} ({host.name}:{pools[host.name].pid}) running" in "\n" + shown.stdout

        # A command to one pool changes only that one.
        result = rqpoolctl(shared_redis.url, "scale", "foo=2", "--pool", "host2")
        assert result.returncode == 0 and result.stdout.startswith(f"host2:{pools['host2'].pid}: applied")
        wait_for(lambda: live(shared_redis)["host2"]["lists"][0]["running"] == 2, 10, "host2 at 2 workers")
        assert [live(shared_redis)[n]["lists"][0]["desired"] for n in ("host1", "host3")] == [1, 1]

        # --all reaches all three.
        result = rqpoolctl(shared_redis.url, "pause", "--all")
        assert result.returncode == 0 and result.stdout.count(": applied: workers paused") == 3
        wait_for(lambda: all(r["state"] == "paused" for r in live(shared_redis).values()), 10, "all paused")
        assert rqpoolctl(shared_redis.url, "resume", "--all").returncode == 0
        wait_for(lambda: all(r["state"] == "running" for r in live(shared_redis).values()), 10, "all running")

        # SIGKILL of host1's master: it vanishes within the TTL, the others stay.
        os.kill(pools["host1"].pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: "host1" not in live(shared_redis), TTL + 2, "host1 gone from status")
        assert time.monotonic() - killed <= TTL + HEARTBEAT
        assert set(live(shared_redis)) == {"host2", "host3"}

        # Cut host3's link: it vanishes by TTL (nobody can remove it), host2 is undisturbed.
        beat_before = live(shared_redis)["host2"]["heartbeat_at"]
        _ip("link", "set", hosts[2].link, "down")
        cut = time.monotonic()
        wait_for(lambda: "host3" not in live(shared_redis), TTL + 2 * HEARTBEAT + 1, "host3 gone after the cut")
        assert time.monotonic() - cut <= TTL + 2 * HEARTBEAT + 1
        assert pools["host3"].process.poll() is None  # its pool runs on without Redis
        record = live(shared_redis)["host2"]
        assert record["heartbeat_at"] > beat_before and record["lists"][0]["running"] == 2

        # The link back: host3 reappears; a command reaches it again.
        _ip("link", "set", hosts[2].link, "up")
        wait_for(lambda: "host3" in live(shared_redis), 30, "host3 back after the link returned")
        (reply,) = client.send_command("reset", pool="host3", connection=shared_redis.client(), timeout=5)
        assert reply.ok, reply
        listing = json.loads(rqpoolctl(shared_redis.url, "status", "--json").stdout)
        assert sorted(p["name"] for p in listing["pools"]) == ["host2", "host3"]
        assert not shared_redis.client().exists(wire.record_key(f"host1:{pools['host1'].pid}"))

        for name in ("host2", "host3"):
            pools[name].signal(signal.SIGQUIT)
        for name in ("host2", "host3"):
            assert pools[name].wait_exit(30) == 0
        wait_for(lambda: not live(shared_redis), 5, "every record removed at the clean stops")
    finally:
        for pool in pools.values():
            pool.cleanup()
