"""A small HTTP server for the view on its own (tests, ``streams view``): the view's router
in a FastAPI app, served by uvicorn on a thread, on a socket bound before it starts (port 0:
a free one, read back from the socket).

The main process's one HTTP server (streams/http) mounts ``view_router`` instead; this is
the same router on an app of its own.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from streams.web.hub import Hub

logger = logging.getLogger(__name__)


def view_app(hub: Hub):
    """A FastAPI app serving the view's page and pictures over ``hub``."""
    from fastapi import FastAPI

    from streams.web.routes import view_router

    app = FastAPI(title="streams view", docs_url=None, redoc_url=None)
    app.include_router(view_router(hub))
    return app


class ViewServer:
    """uvicorn serving ``app`` on ``host:port`` from a thread; ``close()`` stops it.

    Raises OSError (with the address) if the port cannot be bound.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as err:
            self._socket.close()
            raise type(err)(err.errno, f"cannot listen on {host}:{port}: {err.strerror}") from err
        self.host, self.port = host, self._socket.getsockname()[1]
        # Open MJPEG and WebSocket responses never end by themselves: give them 2 s at shutdown.
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, args=([self._socket],), name="view-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10.0
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if not self._server.started:
            self.close()
            raise OSError(f"the view's HTTP server did not start on {host}:{self.port}")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(5.0)
        self._socket.close()

    def __enter__(self) -> ViewServer:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
