"""Talking to systemd: readiness, watchdog pings and stopping, over $NOTIFY_SOCKET.

The sd_notify protocol is one datagram per message on a Unix socket, so it
needs no library. Outside systemd (no $NOTIFY_SOCKET) every call is a no-op.
The watchdog is pinged from the daemon's main loop, so a loop that hangs stops
the pings and systemd restarts omad.
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "watchdog_seconds"]


def notify(message: str) -> bool:
    """Send ``message`` (e.g. ``READY=1``) to systemd; False when not under systemd or it failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_seconds() -> float | None:
    """systemd's watchdog period for this process (WatchdogSec=), or None when it is off."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec) / 1_000_000
    except ValueError:
        return None
    return value if value > 0 else None
