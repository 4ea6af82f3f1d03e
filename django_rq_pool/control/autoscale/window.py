"""The scale-down delay: a list's count follows the highest target of the last ``delay`` seconds.

This is the hysteresis. A rise in the target applies at once; a fall applies only once the higher
targets are ``delay`` seconds old, so a steady load whose backlog flickers between 3 and 5 keeps 5
workers instead of flapping, and a list drops to its floor only after ``delay`` s without need.
A monotonic deque keeps each update O(1) amortised.
"""

from __future__ import annotations

from collections import deque


class ScaleDownWindow:
    """The maximum of the targets recorded over the last ``delay`` seconds."""

    def __init__(self, delay: float):
        self.delay = delay
        self._peaks: deque[tuple[float, int]] = deque()  # (time, target), targets strictly decreasing

    def record(self, now: float, target: int) -> int:
        """Record ``target`` at ``now`` (monotonic seconds) and return the window's maximum."""
        while self._peaks and self._peaks[-1][1] <= target:
            self._peaks.pop()
        self._peaks.append((now, target))
        while self._peaks[0][0] < now - self.delay:
            self._peaks.popleft()
        return self._peaks[0][1]

    def falls_below(self, level: int) -> float | None:
        """When the maximum drops below ``level`` if no higher target comes (None: it already is)."""
        last = None
        for when, target in self._peaks:
            if target < level:
                break
            last = when
        return None if last is None else last + self.delay
