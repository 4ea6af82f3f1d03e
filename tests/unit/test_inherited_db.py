"""Whether a worker holds a DB socket: asked before each job child's fork, so the child skips the drop."""

from __future__ import annotations

from django.db import connection

from django_rq_pool.common.inherited_db import drop_inherited_db_connections, holds_db_connections


def test_an_open_connection_is_seen_until_dropped():
    connection.ensure_connection()
    assert holds_db_connections() is True
    drop_inherited_db_connections()
    assert holds_db_connections() is False
    assert connection.connection is None
