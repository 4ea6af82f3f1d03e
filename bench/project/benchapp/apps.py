"""Loads the app's state at ``django.setup()``, as a large real project does (caches, registries)."""

from django.apps import AppConfig


class BenchAppConfig(AppConfig):
    name = "benchapp"

    def ready(self) -> None:
        from . import state

        state.load()
