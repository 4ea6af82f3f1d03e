"""A URLconf slow to import on purpose, as a large project's is: many apps' patterns, each module
doing work at import (here: a fixed amount of hashing, about a second on the bench machine)."""

import hashlib

from django.http import HttpResponse
from django.urls import include, path

IMPORT_WORK = 1_500_000  # sha256 rounds at import time


def _expensive_import() -> str:
    digest = b"benchapp.urls"
    for _ in range(IMPORT_WORK):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


IMPORT_DIGEST = _expensive_import()


def view(request, pk=0, slug=""):  # type: ignore[no-untyped-def]
    return HttpResponse(str(pk))


def _section(name: str) -> list:
    return [path(f"{name}/{n}/<int:pk>/<slug:slug>/", view, name=f"{name}-{n}") for n in range(300)]


urlpatterns = [path(f"s{n}/", include((_section(f"s{n}"), f"s{n}"))) for n in range(10)]
urlpatterns.append(path("items/<int:pk>/", view, name="item"))
