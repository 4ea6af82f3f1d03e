"""Django app registration."""

from django.apps import AppConfig


class RqPoolConfig(AppConfig):
    name = "django_rq_pool"
    verbose_name = "RQ pool"
