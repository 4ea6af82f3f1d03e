"""The web tests' site: the admin (django-rq's dashboard and the pools page live inside it)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
