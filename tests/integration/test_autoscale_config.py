"""Autoscaling configuration through the real ``manage.py rqpool``: --check shows the bounds and the
memory budget; bad bounds, caps and budgets are one-line errors with exit status 2 and nothing started."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ..harness import MANAGE, TEST_PROJECT


def rqpool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(MANAGE), "rqpool", *args],
        cwd=TEST_PROJECT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_check_shows_bounds_and_the_memory_budget(tmp_path):
    config = tmp_path / "pool.yml"
    config.write_text("foo: {min: 1, max: 16}\n'foo,bar': {count: 2, max: 4, scale_down_delay: 5, max_jobs: 9}\n")
    result = rqpool("--check", "-c", str(config), "--max-memory", "4GiB")
    assert result.returncode == 0, result.stderr
    assert "[foo] x1: autoscale 1..16, scale_down_delay=30s; default options" in result.stdout
    assert "[foo,bar] x2: autoscale 0..4, scale_down_delay=5s; max_jobs=9" in result.stdout
    assert "max_memory: 4096 MiB" in result.stdout


@pytest.mark.parametrize(
    ("config", "args", "env", "message"),
    [
        ("foo:\n  min: 3\n  max: 2\n", (), {}, ":2: key 'foo': min 3 is above max 2; min <= max"),
        ("foo: {max: 65}\n", (), {}, "max 65 is above the cap of 64 workers per list"),
        ("foo: {max: 4}\n", (), {"RQ_POOL_WORKERS": "foo=6"}, "count 6 is outside the list's min..max (0..4"),
        ("foo: {max: 4}\n", ("--max-memory", "plenty"), {}, "--max-memory: the value must be a size such as 512MB"),
    ],
)
def test_bad_autoscaling_settings_are_one_line_errors(tmp_path, config, args, env, message):
    path = tmp_path / "pool.yml"
    path.write_text(config)
    result = rqpool("--check", "-c", str(path), *args, env=env)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
