"""The example site: the admin, with django-rq's dashboard and the worker pools page inside it."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/django_rq_pool/workerpool/")),
]
