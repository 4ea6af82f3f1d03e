"""The pools fragment rendered from a registry document: every field, controls by permission, escaping."""

from __future__ import annotations

import html
import re

from django.template.loader import render_to_string

from django_rq_pool.web.page import human_bytes, human_duration, page_view, queues_of

NOW = 1_000_000.0
XSS = "<script>alert(1)</script>"


def document(queue: str = "foo") -> dict:
    """A registry document in the shape `rqpoolctl status --json` prints."""
    key = f"{queue},bar"
    return {
        "generated_at": NOW,
        "pools": [
            {
                "id": "web1:4242",
                "name": "web1",
                "host": "web1",
                "pid": 4242,
                "app": "example_project",
                "version": "0.1.0",
                "source": "rq-pool.yml",
                "state": "running",
                "started_at": NOW - 3725,
                "heartbeat_at": NOW - 2,
                "lists": [
                    {
                        "queues": [queue, "bar"],
                        "key": key,
                        "configured": 2,
                        "override": 3,
                        "desired": 3,
                        "running": 3,
                        "busy": 1,
                        "idle": 2,
                        "paused": False,
                        "backoff": {"until": NOW + 30, "reason": "exit 1 three times", "failures": 3},
                        "min": None,
                        "max": None,
                    }
                ],
                "workers": [
                    {
                        "name": "web1.4243.1",
                        "pid": 4243,
                        "list": key,
                        "state": "busy",
                        "job_id": "job-1",
                        "jobs_done": 17,
                        "started_at": NOW - 65,
                        "uss": 12 * 1024 * 1024,
                    }
                ],
                "exits": {"normal": 1, "crash": 0, "max_jobs": 0, "memory": 0, "stuck": 0, "killed": 0},
                "commands": {"applied": 2, "refused": 1},
            }
        ],
    }


def render(doc: dict, can_change: bool, link=lambda queue, job_id: None) -> str:
    backlog = {name: {"count": 5, "oldest_age": 42.0} for name in queues_of(doc)}
    context = {
        "pools": page_view(doc, backlog, link),
        "can_change": can_change,
        "action_url": "/admin/django_rq_pool/workerpool/action/",
        "recent_actions": [],
        "error": "",
    }
    return render_to_string("django_rq_pool/workerpool/pools.html", context)


def text(markup: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup)))


def test_every_field_of_pool_list_and_worker_is_shown() -> None:
    shown = text(render(document(), can_change=False))
    for expected in (
        "web1:4242",
        "4242",
        "example_project",
        "0.1.0",
        "running",
        "Uptime 1 h 2 min",
        "Heartbeat 2 s ago",
        "foo bar",  # queues in priority order
        "foo: 5, oldest 42 s",
        "bar: 5, oldest 42 s",
        "backing off for 30 s: exit 1 three times",
        "web1.4243.1",
        "4243",
        "busy",
        "job-1",
        "17",
        "12.0 MiB",
        "1 min 5 s",
    ):
        assert expected in shown, expected
    for label, value in (("Configured", "2"), ("Override", "3"), ("Desired", "3"), ("Running", "3"), ("Busy", "1")):
        assert re.search(rf'<td data-label="{label}"[^>]*>{value}</td>', render(document(), False)), label


def test_view_only_sees_no_controls() -> None:
    markup = render(document(), can_change=False)
    assert "<form" not in markup and "<button" not in markup and "<input" not in markup


def test_controls_carry_the_list_in_their_accessible_names() -> None:
    markup = render(document(), can_change=True)
    for label in (
        'aria-label="Add a worker to foo,bar"',
        'aria-label="Remove a worker from foo,bar"',
        'aria-label="Number of workers for foo,bar"',
        'aria-label="Reset foo,bar to its configured count"',
        'aria-label="Pause web1:4242"',
        'aria-label="Quit web1:4242"',
        'aria-label="Stop the workers of web1:4242"',
        'aria-label="Reload web1:4242"',
    ):
        assert label in markup, label
    assert markup.count("csrfmiddlewaretoken") == 0  # rendered without a request: the views add it


def test_reset_only_when_overridden_and_resume_only_when_paused() -> None:
    doc = document()
    doc["pools"][0]["lists"][0]["override"] = None
    doc["pools"][0]["state"] = "paused"
    markup = render(doc, can_change=True)
    assert "Reset foo,bar" not in markup
    assert 'value="resume"' in markup and 'value="pause"' not in markup


def test_a_script_in_a_queue_name_renders_as_text() -> None:
    markup = render(document(queue=XSS), can_change=True)
    assert XSS not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup


def test_current_job_links_to_django_rq_when_a_link_is_known() -> None:
    markup = render(document(), False, link=lambda queue, job_id: f"/admin/django_rq/dashboard/queues/0/{job_id}/")
    assert '<a href="/admin/django_rq/dashboard/queues/0/job-1/">job-1</a>' in markup
    assert "<a href" not in render(document(), False)


def test_durations_and_sizes() -> None:
    assert [human_duration(s) for s in (None, 0, 59.9, 61, 3600, 90000)] == [
        "—",
        "0 s",
        "59 s",
        "1 min 1 s",
        "1 h 0 min",
        "1 d 1 h",
    ]
    assert [human_bytes(b) for b in (None, 512, 2048, 3 * 1024**3)] == ["—", "512 B", "2.0 KiB", "3.0 GiB"]
