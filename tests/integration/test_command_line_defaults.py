"""Command-line defaults against per-list options and ``$RQ_POOL_WORKERS``, seen by ``rqpool --check``."""

from __future__ import annotations

from .test_operations import check


def test_an_explicit_per_list_value_beats_the_command_line_default(tmp_path):
    config = tmp_path / "pool.yml"
    config.write_text("foo:\n  count: 1\n  with_scheduler: false\nbar: 1\n")
    result = check("--check", "-c", str(config), "--with-scheduler")
    assert result.returncode == 0, result.stderr
    assert "[foo] x1: default options;" in result.stdout  # its own with_scheduler: false
    assert "[bar] x1: with_scheduler=True;" in result.stdout


def test_lists_added_by_rq_pool_workers_get_the_command_line_defaults(tmp_path):
    config = tmp_path / "pool.yml"
    config.write_text("foo:\n  count: 1\n  worker_class: rq.worker.Worker\n")
    args = ("--check", "-c", str(config), "--worker-class", "rq.worker.SimpleWorker", "--with-scheduler")
    result = check(*args, env={"RQ_POOL_WORKERS": "foo=2;bar,baz=3"})
    assert result.returncode == 0, result.stderr
    assert "[foo] x2: worker_class=rq.worker.Worker, with_scheduler=True;" in result.stdout
    assert "[bar,baz] x3: worker_class=rq.worker.SimpleWorker, with_scheduler=True;" in result.stdout


def test_a_non_ascii_digit_in_rq_pool_workers_is_a_clear_error(tmp_path):
    config = tmp_path / "pool.yml"
    config.write_text("foo: 1\n")
    result = check("--check", "-c", str(config), env={"RQ_POOL_WORKERS": "foo=²"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "rqpool: configuration error: $RQ_POOL_WORKERS: key 'foo': worker count must be a non-negative integer, got '²'"
    ]
