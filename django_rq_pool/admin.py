"""Registers the "Worker pools" page with the default admin site (found by admin autodiscovery)."""

from django.contrib import admin

from django_rq_pool.models import WorkerPool
from django_rq_pool.web.admin import WorkerPoolAdmin

admin.site.register(WorkerPool, WorkerPoolAdmin)
