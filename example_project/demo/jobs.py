"""Sample jobs for the example project."""

import logging
import os
import time

log = logging.getLogger("rq.job")


def greet(name: str) -> str:
    """A trivial job."""
    message = f"hello {name} from pid {os.getpid()}"
    log.info(message)
    return message


def slow_sum(numbers: list[int], seconds: float = 0.5) -> int:
    """A job that takes a moment, to watch workers being busy."""
    time.sleep(seconds)
    return sum(numbers)


def fail(reason: str) -> None:
    """A job that fails, to see the failed-job registry fill."""
    raise RuntimeError(reason)
