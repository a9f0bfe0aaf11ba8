"""systemd's sd_notify protocol, without libsystemd: one datagram of `KEY=value` lines to the
AF_UNIX socket that $NOTIFY_SOCKET names ('@' at the start: Linux's abstract namespace).
Nothing is sent when $NOTIFY_SOCKET is unset, so conductor runs the same outside systemd.

The supervisor speaks it (model: gunicorn's systemd.sd_notify): READY=1 once, STATUS= at most
every STATUS_INTERVAL_S, WATCHDOG=1 at half of $WATCHDOG_USEC, STOPPING=1 once. Workers never do:
the unit says NotifyAccess=main.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("conductor.supervisor")

STATUS_INTERVAL_S = 5.0


def socket_address(environ: Mapping[str, str] = os.environ) -> str | None:
    """$NOTIFY_SOCKET as socket.sendto takes it (abstract: a leading NUL), or None when unset.
    A "vsock:" address (systemd 253+, for virtual machines) is not spoken: None too."""
    address = environ.get("NOTIFY_SOCKET", "")
    if not address.startswith(("/", "@")):
        return None
    return "\0" + address[1:] if address.startswith("@") else address


def message(*fields: str) -> bytes:
    """`fields` ("READY=1", "STATUS=...") as one datagram; a line break inside a field would start
    a new, unintended field, so it becomes a space."""
    return "\n".join(" ".join(field.splitlines()) for field in fields).encode()


def notify(address: str | None, *fields: str) -> bool:
    """Send `fields` to `address` (see socket_address); False when there is none or it failed.
    A fresh socket each time, as sd_notify does: no descriptor for the forked workers to inherit."""
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message(*fields), address)
    except OSError as exc:
        log.debug("could not notify systemd at %r: %s", address, exc)
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises;
    None when it is unset or invalid, or $WATCHDOG_PID names another process."""
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid and watchdog_pid != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


class Notifier:
    """The supervisor's notices, each sent when due. Reads the environment once, at creation."""

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.address = socket_address(environ)
        self.watchdog_s = watchdog_interval(environ) if self.address else None
        self.ready_sent = False
        self.stopping_sent = False
        self._status_due = 0.0
        self._watchdog_due = 0.0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str) -> None:
        self.ready_sent = True
        self._send("READY=1", f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self.stopping_sent = True
        self._send("STOPPING=1", f"STATUS={status}")

    def status_due(self, now: float) -> bool:
        return now >= self._status_due

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def watchdog(self, now: float) -> None:
        if self.watchdog_s is not None and now >= self._watchdog_due:
            self._watchdog_due = now + self.watchdog_s
            notify(self.address, "WATCHDOG=1")

    def _send(self, *fields: str) -> None:
        self._status_due = time.monotonic() + STATUS_INTERVAL_S
        notify(self.address, *fields)
