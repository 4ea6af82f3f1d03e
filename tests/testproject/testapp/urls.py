"""The test project's URLconf, with an included one: what the warming tests expect populated."""

from django.http import HttpResponse
from django.urls import include, path


def view(request, pk=0):  # type: ignore[no-untyped-def]
    return HttpResponse(str(pk))


urlpatterns = [
    path("items/<int:pk>/", view, name="item"),
    path("more/", include("testapp.more_urls")),
]
