"""The web server in a thread of `serve` (or alone, `mailflow web`): uvicorn on a socket we
bind ourselves, so a busy port is one clear line at start rather than a thread dying."""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn
from starlette.applications import Starlette

log = logging.getLogger(__name__)


class WebServer:
    def __init__(self, asgi: Starlette, host: str, port: int):
        self.sock = socket.create_server((host, port))  # OSError: the caller says why
        self.sock.set_inheritable(True)
        self.host, self.port = self.sock.getsockname()[:2]  # port 0: the one we were given
        self.server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="off",
                                                    access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="web", daemon=True)

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> WebServer:
        self.thread.start()
        return self

    def running(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
