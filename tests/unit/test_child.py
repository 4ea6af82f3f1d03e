"""How a helper child's body ends: its status, or its traceback in the pool's log and status 1."""

from __future__ import annotations

import logging
import socket

from django_rq_pool.common.child import run_logged
from django_rq_pool.control.child import run_control_child


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


def test_a_control_child_that_raises_is_logged_with_its_traceback_and_gives_1(caplog):
    sock, peer = socket.socketpair()
    peer.close()
    sock.close()  # its loop's select() raises at once
    with caplog.at_level(logging.ERROR, logger="django_rq_pool"):
        assert run_control_child(sock, heartbeat=1.0) == 1
    assert "control child failed" in caplog.text and "Traceback" in caplog.text
