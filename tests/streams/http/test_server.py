"""The uvicorn runner (streams/http/server.py): it serves from a thread, stops cleanly (thread
gone, port free again), and a port in use is one log line, not a crash."""

from __future__ import annotations

import logging
import socket
import threading

import httpx
from fastapi import FastAPI

from streams.http.server import HttpServer
from tests.helpers import free_port


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict:
        return {"thread": threading.current_thread().name}

    return app


def test_serves_from_a_thread_and_stops_cleanly():
    port = free_port()
    server = HttpServer(_app(), "127.0.0.1", port)
    assert server.start()
    try:
        answer = httpx.get(f"{server.url}/ping", timeout=5)
        assert answer.status_code == 200
        assert any(t.name == "http" for t in threading.enumerate())
    finally:
        server.stop()
    assert not any(t.name == "http" for t in threading.enumerate())
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", port))


def test_a_port_in_use_is_one_log_line_and_no_server(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = HttpServer(_app(), "127.0.0.1", port)
        with caplog.at_level(logging.ERROR, logger="streams"):
            assert not server.start()
        server.stop()  # harmless when it never started
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"http.port: cannot serve on 127.0.0.1:{port} (")
    assert "continuing without the HTTP server" in errors[0]
