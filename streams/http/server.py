"""uvicorn on a thread of the main process: off the pipeline's hot path, stopped cleanly.

The socket is bound here, before uvicorn runs, so that a port in use is one clear log line
(``http.port: cannot serve ...``) and the run goes on without the server, as it did without
``/metrics``; uvicorn itself would exit its thread with a traceback.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn

logger = logging.getLogger("streams")

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class HttpServer:
    """Serves ``app`` on ``host:port`` from a daemon thread; ``stop()`` shuts it down."""

    def __init__(self, app, host: str, port: int, hub=None) -> None:
        """``hub``: the browser view's (streams.web.hub.Hub), closed first on stop so that open
        pages and MJPEG responses end before the server waits for them."""
        self._hub = hub
        self.host, self.port = host, port
        self._app = app
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> bool:
        """Bind and start serving; False (logged) if the address cannot be bound."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError as err:
            sock.close()
            logger.error(
                "http.port: cannot serve on %s:%d (%s); continuing without the HTTP server "
                "(/metrics, the API)",
                self.host,
                self.port,
                err.strerror or err,
            )
            return False
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_config=None,  # our logging: records go above the live table
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,  # an open MJPEG response must not hold up the stop
        )
        # uvicorn's "Started server process" and the like: our own line below says it.
        logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, logger.level))
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if not self._server.started:
            logger.error("http: the server did not start on %s", self.url)
            return False
        logger.info("http on %s (/metrics, /api/streams, /openapi.json)", self.url)
        return True

    def _serve(self, sock: socket.socket) -> None:
        try:
            self._server.run(sockets=[sock])
        except BaseException:  # noqa: BLE001  (a SystemExit from uvicorn must not vanish)
            logger.exception("http: the server stopped")
        finally:
            sock.close()

    def stop(self) -> None:
        if self._hub is not None:
            self._hub.close()
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            logger.warning("http: the server did not stop in %.0f s", STOP_TIMEOUT_S)
