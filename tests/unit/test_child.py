"""How a helper child's body ends: its status, or its traceback in the pool's log and status 1."""

from __future__ import annotations

import logging

from django_rq_pool.common.child import run_logged


def _fails(word: str) -> int:
    raise RuntimeError(f"broken {word}")


def test_a_body_that_returns_gives_its_status(caplog):
    assert run_logged("janitor", lambda code: code, 3) == 3
    assert caplog.records == []


def test_a_body_that_raises_is_logged_with_its_traceback_and_gives_1(caplog):
    with caplog.at_level(logging.ERROR, logger="django_rq_pool"):
        assert run_logged("janitor", _fails, "accounting") == 1
    (record,) = caplog.records
    assert record.name.startswith("django_rq_pool.") and record.getMessage() == "janitor failed"
    assert "RuntimeError: broken accounting" in caplog.text and "Traceback" in caplog.text
