"""The test app's config: probes and faults that tests switch on through the environment."""

import os

from django.apps import AppConfig
from django.core import checks


def failing_check(app_configs, **kwargs):  # type: ignore[no-untyped-def]
    return [checks.Error("failing on purpose (TEST_FAILING_CHECK)", id="testapp.E001")]


class TestAppConfig(AppConfig):
    name = "testapp"

    def ready(self) -> None:
        if os.environ.get("TEST_GC_PROBE"):
            from .gc_probe import record

            record("ready")
        if os.environ.get("TEST_MASTER_FAULT"):
            from .faults import install

            install(os.environ["TEST_MASTER_FAULT"])
        if os.environ.get("TEST_FAILING_CHECK"):
            checks.register(failing_check)
        if os.environ.get("TEST_DEQUEUE_KILL"):
            from .faults import install_dequeue_kill

            install_dequeue_kill(os.environ["TEST_DEQUEUE_KILL"])
        if os.environ.get("TEST_DEQUEUE_FAIL"):
            from .faults import install_dequeue_fail

            install_dequeue_fail(os.environ["TEST_DEQUEUE_FAIL"])
        if os.environ.get("TEST_REDIS_KILL"):
            from .faults import install_redis_kill

            install_redis_kill(os.environ["TEST_REDIS_KILL"])
        if os.environ.get("TEST_JANITOR_FAULT"):
            from .faults import break_janitors

            break_janitors()
