"""The test app's config: probes and faults that tests switch on through the environment."""

import os

from django.apps import AppConfig


class TestAppConfig(AppConfig):
    name = "testapp"

    def ready(self) -> None:
        if os.environ.get("TEST_GC_PROBE"):
            from .gc_probe import record

            record("ready")
        if os.environ.get("TEST_MASTER_FAULT"):
            from .faults import install

            install(os.environ["TEST_MASTER_FAULT"])
