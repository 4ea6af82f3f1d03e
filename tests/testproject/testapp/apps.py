"""The test app's config: with $TEST_GC_PROBE set, ready() records the collector's state."""

import os

from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "testapp"

    def ready(self) -> None:
        if os.environ.get("TEST_GC_PROBE"):
            from .gc_probe import record

            record("ready")
