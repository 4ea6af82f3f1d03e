"""The web tests' site: the admin, with the pools page and django-rq's dashboard.

django-rq's dashboard joined the admin in django-rq 4.0; before, a site mounts it by
``include("django_rq.urls")``, as django-rq's README of those releases says.
"""

from importlib.metadata import version

from django.contrib import admin
from django.urls import include, path

urlpatterns = [path("admin/", admin.site.urls)]
if int(version("django-rq").split(".")[0]) < 4:
    urlpatterns.append(path("django-rq/", include("django_rq.urls")))
