"""Secrets in RQ_QUEUES entries, one test per shape, and in free text (log lines, errors)."""

from __future__ import annotations

import pytest

from django_rq_pool.config.redact import describe_connection, redact, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://app:s3cret@host:6379/0", "redis://app:***@host:6379/0"),
        ("redis://:s3cret@host/0", "redis://:***@host/0"),
        ("rediss://host/0?password=s3cret&ssl_cert_reqs=none", "rediss://host/0?password=***&ssl_cert_reqs=none"),
        ("redis://host/0?Password=s3cret", "redis://host/0?Password=***"),
        ("redis://app@host/0", "redis://app@host/0"),  # a user name only: nothing secret
        ("unix:///run/redis.sock?db=1&password=s3cret", "unix:///run/redis.sock?db=1&password=***"),
    ],
)
def test_url_userinfo_and_query_password(url, shown):
    assert redact_url(url) == shown


def test_password_key():
    assert redact({"HOST": "h", "PASSWORD": "s3cret", "DB": 0}) == {"HOST": "h", "PASSWORD": "***", "DB": 0}
    assert redact({"PASSWORD": None}) == {"PASSWORD": None}  # nothing set: nothing to hide


def test_connection_kwargs_nested():
    entry = {"CONNECTION_KWARGS": {"password": "s3cret", "ssl": {"ssl_password": "k3y", "ca": "/ca.pem"}}}
    assert redact(entry) == {"CONNECTION_KWARGS": {"password": "***", "ssl": {"ssl_password": "***", "ca": "/ca.pem"}}}


def test_sentinel_kwargs_and_redis_client_kwargs():
    entry = {
        "SENTINELS": [("h", 26379)],
        "SENTINEL_KWARGS": {"password": "s3cret", "socket_timeout": 1},
        "REDIS_CLIENT_KWARGS": {"password": "s3cret", "username": "app"},
    }
    shown = redact(entry)
    assert shown["SENTINEL_KWARGS"] == {"password": "***", "socket_timeout": 1}
    assert shown["REDIS_CLIENT_KWARGS"] == {"password": "***", "username": "app"}
    assert shown["SENTINELS"] == [("h", 26379)]


def test_urls_anywhere_in_an_entry():
    entry = {"URL": "redis://u:s3cret@h/0", "EXTRA": ["redis://h/1?password=p4ss"]}
    assert redact(entry) == {"URL": "redis://u:***@h/0", "EXTRA": ["redis://h/1?password=***"]}


def test_describe_connection_is_sorted_and_masked():
    text = describe_connection({"URL": "redis://u:s3cret@h/0", "PASSWORD": "p4ss"})
    assert text == "PASSWORD=***, URL=redis://u:***@h/0"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("connect to redis://u:s3cret@h:6379/0 failed", "connect to redis://u:***@h:6379/0 failed"),
        ("URL=redis://h/0?db=1&password=s3cret", "URL=redis://h/0?db=1&password=***"),
        ("CONNECTION_KWARGS={'password': 's3cret', 'db': 1}", "CONNECTION_KWARGS={'password': '***', 'db': 1}"),
        ('{"ssl_password": "s3cret"}', "{\"ssl_password\": '***'}"),
        ("Redis(password=s3cret, db=1)", "Redis(password=***, db=1)"),
        ("spawned worker 123 for [foo]", "spawned worker 123 for [foo]"),
    ],
)
def test_free_text(text, shown):
    assert redact_text(text) == shown
