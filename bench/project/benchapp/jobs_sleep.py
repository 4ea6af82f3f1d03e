"""The autoscaling bench's job: a short wait, like a call to another service."""

import time


def nap(seconds: float) -> None:
    time.sleep(seconds)
