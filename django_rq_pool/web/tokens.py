"""django-rq's ``RQ_API_TOKEN`` convention for scripts: ``Authorization: Bearer <token>``."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.http import HttpRequest


def bearer_ok(request: HttpRequest) -> bool:
    """True when the request carries the configured token; never when no token is configured."""
    expected = getattr(settings, "RQ_API_TOKEN", "") or ""
    header = request.headers.get("Authorization", "")
    if not expected or not header.startswith("Bearer "):
        return False
    given = header.removeprefix("Bearer ").strip()
    return secrets.compare_digest(given.encode(), str(expected).encode())
