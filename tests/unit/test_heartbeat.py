"""The master's side of stuck-worker detection: what a heartbeat report makes it decide."""

from __future__ import annotations

import os
import time

from django_rq_pool.common.heartbeat_rule import heartbeat_interval, worker_heartbeat_kwargs
from django_rq_pool.master.stuck import HeartbeatMonitor


def check(monitor: HeartbeatMonitor, report: str, live: dict[int, float], ok: bool = True) -> list[int]:
    """Feed one report through a real pipe, as the monitor child would."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, report.encode())
    os.close(write_fd)
    monitor.started(4242, read_fd, time.monotonic())
    return [pid for pid, _, _ in monitor.finished(ok, live)]


def test_only_a_silent_worker_is_stuck():
    now = time.time()
    monitor = HeartbeatMonitor(stuck_timeout=10, interval=2, reachable_since=now - 100)
    live = {1: now - 100, 2: now - 100, 3: now - 100}
    report = f"1 {now - 3:.3f} 0\n2 {now - 30:.3f} 0\n3 - 0\n"
    assert check(monitor, report, live) == [2, 3]  # 3 never heartbeat in 100 s


def test_a_new_worker_gets_the_full_timeout_from_its_start():
    now = time.time()
    monitor = HeartbeatMonitor(stuck_timeout=10, interval=2, reachable_since=now - 100)
    assert check(monitor, "1 - 0\n", {1: now - 3}) == []


def test_nobody_is_judged_while_redis_is_unreachable_and_ages_restart_after():
    now = time.time()
    monitor = HeartbeatMonitor(stuck_timeout=10, interval=2, reachable_since=now - 100)
    live = {1: now - 100}
    assert check(monitor, "", live, ok=False) == []
    assert check(monitor, f"1 {now - 60:.3f} 0\n", live) == []  # Redis is back: the clock restarts now
    monitor.reachable_since -= 11
    assert check(monitor, f"1 {now - 60:.3f} 0\n", live) == [1]


def test_an_in_process_job_adds_its_timeout_and_malformed_lines_are_ignored():
    now = time.time()
    monitor = HeartbeatMonitor(stuck_timeout=10, interval=2, reachable_since=now - 100)
    live = {1: now - 100, 2: now - 100}
    assert check(monitor, f"1 {now - 30:.3f} 60\ngarbage\n2 {now - 30:.3f}", live) == []


def test_workers_heartbeat_often_enough():
    assert heartbeat_interval(120) == 30 and heartbeat_interval(4) == 1 and heartbeat_interval(1000) == 30
    assert worker_heartbeat_kwargs(4) == {"worker_ttl": 16, "job_monitoring_interval": 1}
    assert worker_heartbeat_kwargs(0) == {}


def test_a_worker_whose_redis_is_down_is_not_judged_and_the_others_are():
    now = time.time()
    monitor = HeartbeatMonitor(stuck_timeout=10, interval=2, reachable_since=now - 100)
    live = {1: now - 100, 2: now - 100}
    assert check(monitor, f"1 {now - 30:.3f} 0\n2 ? 0\n", live) == [1]
    assert check(monitor, f"1 {now - 30:.3f} 0\n2 {now - 60:.3f} 0\n", live) == [1]  # 2's age counts from now
    assert check(monitor, f"2 {now - 60:.3f} 0\n", live, ok=False) == []  # a partial report judges what it read


def test_a_partial_report_from_a_child_killed_by_its_alarm_still_counts():
    now = time.time()
    monitor = HeartbeatMonitor(stuck_timeout=10, interval=2, reachable_since=now - 100)
    assert check(monitor, f"1 {now - 30:.3f} 0\n", {1: now - 100, 2: now - 100}, ok=False) == [1]
