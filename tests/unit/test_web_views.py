"""The admin page's views through Django's test client: permissions, CSRF, actions, the APIs.

The registry is a real private redis-server with no pool in it; the pages with pools in them are
covered by tests/unit/test_web_page.py (rendering) and tests/integration/test_web_*.py (live).
"""

from __future__ import annotations

import html
import importlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import transaction
from django.dispatch import receiver
from django.test import Client, override_settings
from django.test.signals import setting_changed
from django.test.utils import setup_test_environment, teardown_test_environment
from django.urls import resolve

from django_rq_pool.web.registry import job_link

from ..harness import RedisServer, free_port

PAGE = "/admin/django_rq_pool/workerpool/"
ACTION = PAGE + "action/"
FRAGMENT = PAGE + "fragment/"
STATUS = PAGE + "status.json"
API_STATUS = PAGE + "api/status.json"
API_METRICS = PAGE + "api/metrics"
TOKEN = "s3cret-token"
APP = "django_rq_pool"


@receiver(setting_changed)
def django_rq_reads_rq_queues_again(*, setting: str, **kwargs: Any) -> None:
    """Before 4.0 django-rq copies ``RQ_QUEUES`` once, at import; ``override_settings`` must reach the copy."""
    import django_rq.settings

    if setting == "RQ_QUEUES" and "QUEUES" in vars(django_rq.settings):
        importlib.reload(django_rq.settings)


@pytest.fixture(scope="module")
def django_db() -> Iterator[None]:
    """The test site's tables in its in-memory SQLite, made once for this module."""
    setup_test_environment()
    call_command("migrate", verbosity=0, interactive=False)
    yield
    teardown_test_environment()


@pytest.fixture
def site(django_db: None, redis_client, redis_server: RedisServer) -> Iterator[None]:
    """Every test in a rolled-back transaction, with django-rq's queues on the private Redis."""
    queues = {name: {"URL": redis_server.url} for name in ("default", "foo", "bar", "baz")}
    urls = "testproject.urls"
    with override_settings(RQ_QUEUES=queues, RQ_API_TOKEN=TOKEN, ROOT_URLCONF=urls), transaction.atomic():
        yield
        transaction.set_rollback(True)


def user(name: str, *perms: str, superuser: bool = False, staff: bool = True) -> Client:
    account = User.objects.create_user(name, is_staff=staff, is_superuser=superuser)  # no password to hash
    for codename in perms:
        account.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label=APP))
    client = Client()
    client.force_login(account)
    return client


def scale_post(**extra: str) -> dict[str, str]:
    return {"pool": "nowhere:1", "command": "scale", "list": "foo", "delta": "+1", **extra}


def test_the_model_carries_view_and_change_permissions(site: None) -> None:
    permissions = Permission.objects.filter(content_type__app_label=APP)
    assert set(permissions.values_list("codename", flat=True)) == {"view_workerpool", "change_workerpool"}


def test_current_jobs_link_to_django_rqs_job_page_where_the_site_mounts_it(site: None) -> None:
    link = job_link()
    found = resolve(link("baz", "job-1"))
    assert found.func.__name__ == "job_detail"
    assert found.kwargs == {"queue_index": 1, "job_id": "job-1"}  # bar, baz, default, foo
    assert link("nope", "job-1") is None


def test_anonymous_users_get_the_admin_login(site: None) -> None:
    for url in (PAGE, FRAGMENT, STATUS):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    response = Client().post(ACTION, scale_post())
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_staff_without_permission_get_403_and_no_index_entry(site: None) -> None:
    client = user("nobody")
    for url in (PAGE, FRAGMENT, STATUS):
        assert client.get(url).status_code == 403, url
    assert client.post(ACTION, scale_post()).status_code == 403
    assert "Worker pools" not in client.get("/admin/").content.decode()


def test_view_only_staff_see_the_page_without_controls_and_a_forged_post_gets_403(site: None) -> None:
    client = user("viewer", "view_workerpool")
    index = client.get("/admin/").content.decode()
    assert "Worker pools" in index and 'href="/admin/django_rq_pool/workerpool/"' in index
    page = client.get(PAGE)
    assert page.status_code == 200
    body = page.content.decode()
    assert "No live pools" in body and "rqpool-action" not in body
    assert client.post(ACTION, scale_post()).status_code == 403
    assert not LogEntry.objects.exists()


def test_a_post_without_csrf_token_is_rejected(site: None) -> None:
    account = User.objects.create_superuser("boss")
    client = Client(enforce_csrf_checks=True)
    client.force_login(account)
    response = client.post(ACTION, scale_post())
    assert response.status_code == 403 and b"CSRF" in response.content
    assert not LogEntry.objects.exists()


def test_actions_only_by_post(site: None) -> None:
    assert user("boss", superuser=True).get(ACTION).status_code == 405


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"command": "scale", "list": "foo", "count": "3"}, "missing field 'pool'"),
        ({"pool": "p", "command": "explode"}, "unknown command 'explode'"),
        ({"pool": "p", "command": "scale", "list": "foo", "count": "lots"}, "must be a whole number"),
        ({"pool": "p", "command": "scale", "list": "foo", "count": "-2"}, "must be 0 or more"),
        ({"pool": "p", "command": "scale", "list": "foo"}, "scale needs 'count'"),
        ({"pool": "p", "command": "scale", "count": "1"}, "missing field 'list'"),
        ({"pool": "p", "command": "pause", "list": "foo"}, "takes no 'list'"),
        ({"pool": "p" * 1001, "command": "pause"}, "longer than 1000 characters"),
    ],
)
def test_bad_input_is_refused_with_a_reason_and_nothing_is_sent(site: None, data: dict, reason: str) -> None:
    response = user("boss", superuser=True).post(ACTION, data, headers={"X-Requested-With": "fetch"})
    assert response.status_code == 400
    assert reason in html.unescape(response.content.decode())
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize("command", ["quit", "stop-workers"])
def test_quit_and_stop_workers_ask_for_confirmation_first(site: None, command: str) -> None:
    client = user("boss", "view_workerpool", "change_workerpool")
    fragment = client.post(ACTION, {"pool": "nowhere:1", "command": command}, headers={"X-Requested-With": "fetch"})
    body = fragment.content.decode()
    assert fragment.status_code == 200 and 'name="confirmed" value="yes"' in body and "<html" not in body
    page = client.post(ACTION, {"pool": "nowhere:1", "command": command})
    assert page.status_code == 200 and "Are you sure?" in page.content.decode()
    assert not LogEntry.objects.exists()  # nothing was sent
    confirmed = client.post(
        ACTION, {"pool": "nowhere:1", "command": command, "confirmed": "yes"}, headers={"X-Requested-With": "fetch"}
    )
    assert "no live pool" in confirmed.content.decode()
    assert LogEntry.objects.count() == 1


def test_an_action_is_recorded_with_who_what_and_the_reply(site: None) -> None:
    client = user("operator", "view_workerpool", "change_workerpool")
    response = client.post(ACTION, scale_post(), headers={"X-Requested-With": "fetch"})
    body = response.content.decode()
    assert response.status_code == 200 and 'data-ok="0"' in body and "scale foo by +1: nowhere:1:" in body
    entry = LogEntry.objects.get()
    assert entry.user.username == "operator" and entry.object_id == "nowhere:1"
    assert entry.get_change_message().startswith("scale foo by +1: nowhere:1: ")
    assert "no live pool" in entry.get_change_message()
    recent = client.get(FRAGMENT).content.decode()
    assert "operator on nowhere:1: scale foo by +1" in recent


def test_without_script_an_action_redirects_back_with_a_message(site: None) -> None:
    client = user("operator", "view_workerpool", "change_workerpool")
    response = client.post(ACTION, scale_post(), follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert "scale foo by +1: nowhere:1:" in response.content.decode()


def test_the_reply_is_escaped(site: None) -> None:
    client = user("operator", superuser=True)
    response = client.post(ACTION, scale_post(pool="<script>x</script>"), headers={"X-Requested-With": "fetch"})
    body = response.content.decode()
    assert "<script>" not in body and "&lt;script&gt;x&lt;/script&gt;" in body


def test_status_json_for_staff_sessions(site: None) -> None:
    response = user("viewer", "view_workerpool").get(STATUS)
    assert response.status_code == 200
    document = response.json()
    assert document["pools"] == [] and isinstance(document["generated_at"], float)


def test_token_api_needs_the_right_bearer_token(site: None) -> None:
    anonymous = Client()
    assert anonymous.get(API_STATUS).status_code == 401
    assert anonymous.get(API_STATUS, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert anonymous.get(API_STATUS, headers={"Authorization": TOKEN}).status_code == 401
    response = anonymous.get(API_STATUS, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response.json()["pools"] == []
    assert anonymous.post(API_STATUS, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405
    with override_settings(RQ_API_TOKEN=""):
        assert anonymous.get(API_STATUS, headers={"Authorization": "Bearer "}).status_code == 401
    assert user("viewer", "view_workerpool").get(API_STATUS).status_code == 200
    assert user("nobody").get(API_STATUS).status_code == 401


def test_metrics_by_token_parse_as_prometheus_text(site: None, redis_client) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    redis_client.rpush("rq:queue:foo", "job-a", "job-b")
    assert Client().get(API_METRICS).status_code == 401
    response = Client().get(API_METRICS, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.content.decode())}
    assert "rqpool_workers_desired" in families and "rqpool_worker_exits" in families
    assert json.dumps(families["rqpool_workers_desired"].samples) == "[]"  # no pool is registered


def test_an_unreadable_registry_is_one_clear_line_not_a_500(site: None, redis_server: RedisServer) -> None:
    client = user("viewer", "view_workerpool")
    with override_settings(RQ_QUEUES={"bar": {"URL": redis_server.url}}):
        page = client.get(PAGE)
        assert page.status_code == 200
        assert "RQ_QUEUES has no &#x27;foo&#x27; entry" in page.content.decode()  # RQ_POOL_CONTROL_QUEUE = "foo"
        assert client.get(STATUS).status_code == 503
        boss = user("boss", superuser=True)
        refused = boss.post(ACTION, scale_post(), headers={"X-Requested-With": "fetch"})
        assert "RQ_QUEUES has no" in refused.content.decode()
    closed = f"redis://127.0.0.1:{free_port()}/0"
    with override_settings(RQ_QUEUES={"foo": {"URL": closed}}):
        assert "the registry could not be read" in client.get(FRAGMENT).content.decode()
        status = client.get(STATUS)
        assert status.status_code == 503 and "the registry could not be read" in status.json()["error"]
        metrics = Client().get(API_METRICS, headers={"Authorization": f"Bearer {TOKEN}"})
        assert metrics.status_code == 503
        response = boss.post(ACTION, scale_post(), headers={"X-Requested-With": "fetch"})
        assert "Redis could not be reached" in response.content.decode()
