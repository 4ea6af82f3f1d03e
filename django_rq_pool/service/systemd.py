"""sd_notify for ``Type=notify`` units: READY/RELOADING/STOPPING, STATUS and the watchdog.

The master is single-threaded, so nothing here blocks: one non-blocking datagram per message,
sent from the arbiter's callbacks. NOTIFY_SOCKET and the WATCHDOG_* variables are removed from
the environment once read, so workers and the programs their jobs start don't talk to systemd.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

log = logging.getLogger(__name__)

STATUS_EVERY = 5.0  # seconds between STATUS= refreshes when nothing else is sent


class Notifier:
    """Sends sd_notify datagrams to ``$NOTIFY_SOCKET``."""

    def __init__(self, address: str, watchdog_usec: int | None = None):
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else None
        self._last_watchdog = 0.0
        self._last_status = ""
        self._last_status_at = 0.0
        self._warned = False

    @classmethod
    def from_environment(cls) -> Notifier | None:
        """A notifier if systemd (or a test) asked for one; consumes the variables."""
        address = os.environ.pop("NOTIFY_SOCKET", None)
        usec = os.environ.pop("WATCHDOG_USEC", None)
        watchdog_pid = os.environ.pop("WATCHDOG_PID", None)
        if not address:
            return None
        watchdog = int(usec) if usec and usec.isascii() and usec.isdigit() and int(usec) > 0 else None
        if watchdog_pid and watchdog_pid.isascii() and watchdog_pid.isdigit() and int(watchdog_pid) != os.getpid():
            watchdog = None
        return cls(address, watchdog)

    def send(self, message: str) -> None:
        try:
            self.sock.sendto(message.encode(), self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %s: %s", self.address.lstrip("\0"), exc)
                self._warned = True

    def on_status(self, arbiter: Any, message: str) -> None:
        """Arbiter callback for READY=1, RELOADING=1 and STOPPING=1; carries the status along."""
        self._send_with_status(arbiter, message)

    def on_tick(self, arbiter: Any) -> None:
        """Called once per pass of the master loop: the watchdog, and STATUS= when it changed."""
        now = time.monotonic()
        parts = []
        if self.watchdog_interval is not None and now - self._last_watchdog >= self.watchdog_interval:
            self._last_watchdog = now
            parts.append("WATCHDOG=1")
        status = status_text(arbiter)
        if status != self._last_status or now - self._last_status_at >= STATUS_EVERY:
            parts.append(f"STATUS={status}")
        if parts:
            self._send_parts(parts, status, now)

    def _send_with_status(self, arbiter: Any, message: str) -> None:
        status = status_text(arbiter)
        self._send_parts([message, f"STATUS={status}"], status, time.monotonic())

    def _send_parts(self, parts: list[str], status: str, now: float) -> None:
        if any(p.startswith("STATUS=") for p in parts):
            self._last_status, self._last_status_at = status, now
        self.send("\n".join(parts))


def status_text(arbiter: Any) -> str:
    return f"{arbiter.state}: {arbiter.status_line()}"
