"""Django app registration."""

from types import ModuleType

from django.apps import AppConfig

from django_rq_pool.master.collector import pause_while_loading


class RqPoolConfig(AppConfig):
    name = "django_rq_pool"
    verbose_name = "RQ pool"

    def __init__(self, app_name: str, app_module: ModuleType | None) -> None:
        # Django creates every app's config before it imports any models or runs any ready():
        # the earliest point of the boot that an app sees.
        super().__init__(app_name, app_module)
        pause_while_loading()

    def ready(self) -> None:
        from django_rq_pool import checks  # noqa: F401  (registers the configuration check)
