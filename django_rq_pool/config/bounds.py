"""Autoscaling bounds of a queue list: ``min``, ``max`` and ``scale_down_delay`` next to ``count``.

A list with ``min`` or ``max`` is autoscaled: its count moves within ``[min, max]`` with the backlog
(docs/autoscaling.md). ``count``, when also given, is the starting count; otherwise the list starts
at ``min``. A missing ``min`` is 0, a missing ``max`` is the cap (``settings.RQ_POOL_MAX_WORKERS``).
Pure, like the rest of the loader, so it is fuzzed with it.
"""

from __future__ import annotations

from typing import Any

from django_rq_pool.config.plan import DEFAULT_SCALE_DOWN_DELAY, Autoscale

BOUND_NAMES = ("min", "max", "scale_down_delay")
LIST_MARKERS = ("count", "min", "max")  # a mapping with one of these is a queue list's options
CAP_SETTING = "settings.RQ_POOL_MAX_WORKERS"
MAX_DELAY = 86400.0  # a day: a longer scale-down delay is a typo


class BoundsError(ValueError):
    """A bad bound; the loader turns it into a ConfigError with the file, line and key."""

    def __init__(self, message: str, option: str):
        super().__init__(message)
        self.option = option


def _bound(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BoundsError(f"{name} must be a non-negative integer, got {value!r:.60}", name)
    return value


def _delay(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_DELAY:
        raise BoundsError(
            f"scale_down_delay must be a number of seconds from 0 to {MAX_DELAY:g}, got {value!r:.60}",
            "scale_down_delay",
        )
    return float(value)


def parse_bounds(block: dict, count: int | None, cap: int) -> tuple[int, Autoscale | None]:
    """The list's starting count and its bounds (None for a fixed list); BoundsError names the option."""
    if "min" not in block and "max" not in block:
        if "scale_down_delay" in block:
            raise BoundsError("scale_down_delay applies to an autoscaled list: add min and/or max", "scale_down_delay")
        assert count is not None, "a mapping without min or max has a count"
        return count, None
    low = _bound("min", block.get("min", 0))
    high = _bound("max", block["max"]) if "max" in block else cap
    delay = _delay(block.get("scale_down_delay", DEFAULT_SCALE_DOWN_DELAY))
    if high > cap:
        raise BoundsError(f"max {high} is above the cap of {cap} workers per list ({CAP_SETTING})", "max")
    if low > high:
        raise BoundsError(f"min {low} is above max {high}; min <= max", "min")
    if count is not None and not low <= count <= high:
        raise BoundsError(f"count {count} is outside min..max ({low}..{high}); the starting count lies within", "count")
    return (low if count is None else count), Autoscale(low, high, delay)
