"""The browser view's HTTP routes: the page, its script and style, and the pictures.

``view_router(hub)`` is a FastAPI ``APIRouter``, to mount on the one HTTP server of the main
process (or on :func:`streams.web.server.view_app` for a standalone view):

* ``GET /``: the page (a grid of every stream; click one for a larger view);
* ``GET /view/static/{view.js,view.css}``: its script and style (package data; no CDN);
* ``GET /view/streams``: every stream's state and figures (JSON);
* ``WS /view/ws``: what the page uses: it sends ``{"watch": [ids]}`` (the tiles on screen),
  gets the streams' figures as JSON text every second and each watched stream's pictures as
  binary messages (a 2-byte big-endian header length, the header JSON, the JPEG). One
  connection for every tile: browsers allow about six HTTP connections per host, so one
  MJPEG response per tile would starve a grid of more than six;
* ``GET /view/{id}.mjpg``: one stream as MJPEG (``multipart/x-mixed-replace``), for an
  ``<img>`` elsewhere or a video player; ``GET /view/{id}.jpg``: its next picture.

Each client keeps only the newest picture per stream: a slow browser misses pictures, it
never makes the server queue them.

Mounting it on the main process's server (``streams run``)::

    hub = Hub([local_endpoint(config.publish.endpoint)]).start()   # streams.web.hub
    app = create_app(control, token=token, routers=[view_router(hub)])
    ...
    hub.close()  # first: open picture responses and WebSockets end, then stop the server
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from streams.web.hub import Hub

logger = logging.getLogger(__name__)

STATIC = {"view.js": "text/javascript", "view.css": "text/css"}
FIGURES_EVERY_S = 1.0
PICTURE_WAIT_S = 5.0
MAX_WATCH = 256  # streams one page may watch at once
BOUNDARY = "streamsframe"
CLOSING_POLL_S = 0.5  # open responses notice the hub closing within this


def _static(name: str) -> bytes:
    return resources.files("streams.web").joinpath("static", name).read_bytes()


class _Latest:
    """Newest picture per stream for one client, filled from the hub's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.pending: dict[str, tuple[dict, bytes]] = {}
        self.ready = asyncio.Event()
        self.skipped = 0

    def viewer(self, stream_id: str, header: dict, jpeg: bytes) -> None:
        """The hub's callback (its thread): hand over to the event loop, never wait."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: the client left
            self._loop.call_soon_threadsafe(self._put, stream_id, header, jpeg)

    def _put(self, stream_id: str, header: dict, jpeg: bytes) -> None:
        if stream_id in self.pending:
            self.skipped += 1
        self.pending[stream_id] = (header, jpeg)
        self.ready.set()

    async def take(self) -> dict[str, tuple[dict, bytes]]:
        await self.ready.wait()
        self.ready.clear()
        taken, self.pending = self.pending, {}
        return taken

    async def pictures(self, hub: Hub) -> AsyncIterator[dict[str, tuple[dict, bytes]]]:
        """What ``take`` gives, until the hub closes (checked every ``CLOSING_POLL_S``)."""
        while not hub.closing.is_set():
            try:
                yield await asyncio.wait_for(self.take(), CLOSING_POLL_S)
            except asyncio.TimeoutError:
                continue


def _known(hub: Hub, stream_id: str) -> None:
    if not any(view["stream"] == stream_id for view in hub.streams()):
        raise HTTPException(404, f"unknown stream {stream_id!r}")


def view_router(hub: Hub) -> APIRouter:
    """The page, its files and the picture endpoints over ``hub`` (started by the caller)."""
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @router.get("/view/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, f"no such file {name!r}")
        return Response(_static(name), media_type=STATIC[name])

    @router.get("/view/streams")
    def streams() -> list[dict[str, Any]]:
        """Every stream seen on the bus: state, fps, p50/p99 latency, drops."""
        return hub.streams()

    @router.get("/view/{stream_id}.jpg", responses={200: {"content": {"image/jpeg": {}}}})
    async def picture(stream_id: str) -> Response:
        """The stream's next annotated picture (waits up to 5 s for one)."""
        _known(hub, stream_id)
        latest = _Latest(asyncio.get_running_loop())
        token = hub.watch(stream_id, latest.viewer)
        try:
            taken = await asyncio.wait_for(latest.take(), PICTURE_WAIT_S)
        except asyncio.TimeoutError:
            raise HTTPException(504, f"no picture of stream {stream_id!r} came") from None
        finally:
            hub.unwatch(token)
        return Response(taken[stream_id][1], media_type="image/jpeg")

    @router.get("/view/{stream_id}.mjpg")
    async def mjpeg(stream_id: str) -> StreamingResponse:
        """The stream's annotated pictures as MJPEG, for as long as the client reads."""
        _known(hub, stream_id)

        async def parts() -> AsyncIterator[bytes]:
            latest = _Latest(asyncio.get_running_loop())
            token = hub.watch(stream_id, latest.viewer)
            try:
                async for taken in latest.pictures(hub):
                    _, jpeg = taken[stream_id]
                    yield (
                        (
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(jpeg)}\r\n\r\n"
                        ).encode()
                        + jpeg
                        + b"\r\n"
                    )
            finally:
                hub.unwatch(token)

        return StreamingResponse(
            parts(),
            media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={"Cache-Control": "no-store"},
        )

    @router.websocket("/view/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        latest = _Latest(asyncio.get_running_loop())
        tokens: dict[str, int] = {}
        tasks = [
            asyncio.create_task(_send_figures(websocket, hub)),
            asyncio.create_task(_send_pictures(websocket, hub, latest)),
        ]
        try:
            while True:
                try:
                    text = await asyncio.wait_for(websocket.receive_text(), CLOSING_POLL_S)
                except asyncio.TimeoutError:
                    if hub.closing.is_set():
                        await websocket.close(1001)  # going away
                        break
                    continue
                wanted = _watch_list(text)
                if wanted is None:
                    await websocket.send_text(
                        json.dumps({"type": "error", "error": 'expected {"watch": [ids]}'})
                    )
                    continue
                for stream_id in set(tokens) - wanted:
                    hub.unwatch(tokens.pop(stream_id))
                for stream_id in wanted - set(tokens):
                    tokens[stream_id] = hub.watch(stream_id, latest.viewer)
        except WebSocketDisconnect:
            pass
        finally:
            for token in tokens.values():
                hub.unwatch(token)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    return router


def _watch_list(text: str) -> set[str] | None:
    """The stream ids of a ``{"watch": [...]}`` message, or None if it is not one."""
    try:
        message = json.loads(text)
    except ValueError:
        return None
    wanted = message.get("watch") if isinstance(message, dict) else None
    if not isinstance(wanted, list) or len(wanted) > MAX_WATCH:
        return None
    if not all(isinstance(s, str) and 0 < len(s) <= 64 for s in wanted):
        return None
    return set(wanted)


async def _send_figures(websocket: WebSocket, hub: Hub) -> None:
    while not hub.closing.is_set():
        await websocket.send_text(json.dumps({"type": "streams", "streams": hub.streams()}))
        await asyncio.sleep(FIGURES_EVERY_S)


async def _send_pictures(websocket: WebSocket, hub: Hub, latest: _Latest) -> None:
    async for taken in latest.pictures(hub):
        for header, jpeg in taken.values():
            head = json.dumps(header).encode()
            await websocket.send_bytes(len(head).to_bytes(2, "big") + head + jpeg)
