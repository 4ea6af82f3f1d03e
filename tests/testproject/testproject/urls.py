"""The test site: the admin only (django-rq's dashboard and the pools page live inside it)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
