"""The "Worker pools" admin entry: the page, its live fragment, actions, status JSON and metrics.

Adding ``django_rq_pool`` to ``INSTALLED_APPS`` is all it takes: these URLs live under the
model's admin URL (``/admin/django_rq_pool/workerpool/``), so no URL include is needed.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.cache import never_cache
from redis import RedisError

from django_rq_pool.control import client
from django_rq_pool.models import WorkerPool
from django_rq_pool.web import metrics
from django_rq_pool.web.actions import Action, BadAction, outcome, parse
from django_rq_pool.web.page import page_view
from django_rq_pool.web.registry import Unreadable, job_link, missing_entry, read_registry
from django_rq_pool.web.tokens import bearer_ok

TEMPLATES = "django_rq_pool/workerpool/"
FETCH_HEADER = "fetch"  # X-Requested-With of the page's own script: answer with a fragment
RECENT_ACTIONS = 10


class WorkerPoolAdmin(admin.ModelAdmin):
    """Viewing needs ``view`` (or ``change``) on the worker pool entry; acting needs ``change``."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.changelist_view), name=f"{info}_changelist"),
            path("fragment/", wrap(self.fragment_view), name=f"{info}_fragment"),
            path("action/", wrap(self.action_view), name=f"{info}_action"),
            path("status.json", wrap(self.status_view), name=f"{info}_status"),
            # For scripts and scrapers: a bearer token (RQ_API_TOKEN) or a staff session, no login redirect.
            path("api/status.json", never_cache(self.api_status_view), name=f"{info}_api_status"),
            path("api/metrics", never_cache(self.api_metrics_view), name=f"{info}_api_metrics"),
        ]

    def _url(self, view: str) -> str:
        return reverse(f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}")

    # -- reading ------------------------------------------------------------------------

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied

    def _pools_context(self, request: HttpRequest) -> dict[str, Any]:
        context: dict[str, Any] = {
            "can_change": self.has_change_permission(request),
            "action_url": self._url("action"),
            "fragment_url": self._url("fragment"),
            "pools": [],
            "error": "",
            "recent_actions": LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(WorkerPool))
            .select_related("user")
            .order_by("-action_time")[:RECENT_ACTIONS],
        }
        try:
            document, backlog = read_registry()
        except Unreadable as exc:
            context["error"] = str(exc)
            return context
        context["pools"] = page_view(document, backlog, job_link())
        return context

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        self._require_view(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Worker pools",
            "status_url": self._url("status"),
            **self._pools_context(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, TEMPLATES + "page.html", context)

    def fragment_view(self, request: HttpRequest) -> HttpResponse:
        self._require_view(request)
        return TemplateResponse(request, TEMPLATES + "pools.html", self._pools_context(request))

    def status_view(self, request: HttpRequest) -> HttpResponse:
        self._require_view(request)
        return self._status_json()

    def _status_json(self) -> HttpResponse:
        try:
            document, _ = read_registry(with_backlog=False)
        except Unreadable as exc:
            return JsonResponse({"error": str(exc)}, status=503)
        return JsonResponse(document)

    def _api_allowed(self, request: HttpRequest) -> bool:
        user = getattr(request, "user", None)
        session_ok = bool(user and user.is_active and user.is_staff and self.has_view_or_change_permission(request))
        return session_ok or bearer_ok(request)

    def api_status_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        if not self._api_allowed(request):
            return JsonResponse({"error": "send 'Authorization: Bearer <RQ_API_TOKEN>'"}, status=401)
        return self._status_json()

    def api_metrics_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        if not self._api_allowed(request):
            return JsonResponse({"error": "send 'Authorization: Bearer <RQ_API_TOKEN>'"}, status=401)
        if not metrics.AVAILABLE:
            return HttpResponse(metrics.MISSING + "\n", status=501, content_type="text/plain")
        try:
            document, backlog = read_registry()
        except Unreadable as exc:
            return HttpResponse(f"{exc}\n", status=503, content_type="text/plain")
        body, content_type = metrics.exposition(document, backlog, request.headers.get("Accept", ""))
        return HttpResponse(body, content_type=content_type)

    # -- acting -------------------------------------------------------------------------

    def action_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        try:
            action = parse(request.POST)
        except BadAction as exc:
            return self._answer(request, None, [str(exc)], ok=False, status=400)
        if action.needs_confirmation:
            return self._confirm(request, action)
        lines, ok = self._send(action)
        self.log_change(request, WorkerPool(id=action.pool), f"{action.describe()}: {'; '.join(lines)}")
        return self._answer(request, action, lines, ok=ok)

    def _send(self, action: Action) -> tuple[list[str], bool]:
        problem = missing_entry()
        if problem:
            return [problem], False
        try:
            replies = client.send_command(action.command, pool=action.pool, args=action.args or None)
        except ValueError as exc:  # UnknownPool: no live pool has that id or name
            return [f"{action.pool}: {exc}"], False
        except RedisError as exc:
            return [f"{action.pool}: Redis could not be reached: {exc}"], False
        return [outcome(reply) for reply in replies], all(reply.ok and not reply.timed_out for reply in replies)

    def _fetching(self, request: HttpRequest) -> bool:
        return request.headers.get("X-Requested-With") == FETCH_HEADER

    def _answer(
        self, request: HttpRequest, action: Action | None, lines: list[str], ok: bool, status: int = 200
    ) -> HttpResponse:
        if self._fetching(request):
            context = {"action": action, "lines": lines, "ok": ok}
            return TemplateResponse(request, TEMPLATES + "reply.html", context, status=status)
        text = (f"{action.describe()}: " if action else "") + "; ".join(lines)
        messages.add_message(request, messages.SUCCESS if ok else messages.ERROR, text)
        return HttpResponseRedirect(self._url("changelist"))

    def _confirm(self, request: HttpRequest, action: Action) -> HttpResponse:
        context = {
            "action": action,
            "action_url": self._url("action"),
            "changelist_url": self._url("changelist"),
        }
        if self._fetching(request):
            return TemplateResponse(request, TEMPLATES + "confirm_fragment.html", context)
        page = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Are you sure?", **context}
        return TemplateResponse(request, TEMPLATES + "confirm.html", page)
