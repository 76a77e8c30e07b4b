"""systemd's notify protocol (sd_notify(3)), the few lines of it `serve` needs: READY=1 once
mail is being taken, WATCHDOG=1 while the receivers and the pipeline are alive, STOPPING=1
at shutdown. Outside systemd (no NOTIFY_SOCKET) every call does nothing."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable


def notify(state: str) -> bool:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(address)
        s.sendall(state.encode())
    return True


def watchdog(healthy: Callable[[], bool], stop: threading.Event) -> threading.Thread | None:
    """Pet systemd's watchdog at half its interval while `healthy()`; a stuck or dead part
    stops the petting and systemd restarts the service (Restart=on-failure)."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not os.environ.get("NOTIFY_SOCKET"):
        return None
    interval = int(usec) / 1_000_000 / 2

    def run() -> None:
        while not stop.wait(interval):
            if healthy():
                notify("WATCHDOG=1")

    thread = threading.Thread(target=run, name="watchdog", daemon=True)
    thread.start()
    return thread
