"""The HTTP app of ``streams run``: ``/metrics``, the REST API, health; views mount on it.

Contract (for whoever adds routes, e.g. the browser view in ``streams/web/``):

* ``create_app(control, token=..., routers=[...])`` returns a FastAPI app with these routes,
  whose paths clients rely on (OpenAPI at ``/openapi.json``, docs at ``/docs``):
  ``GET /metrics`` (Prometheus text), ``GET /healthz``, ``GET /readyz``, ``GET /api/config``,
  ``GET|POST /api/streams``, ``GET|PATCH|DELETE /api/streams/{id}``. Each router in
  ``routers`` is included as it is (its own prefix; it must not take the paths above).
* ``control`` (:class:`streams.http.control.Control`) is all a route may touch of the run:
  ``control.snapshot()`` (the figures the live table and ``stats`` show), ``control.streams()``,
  ``control.config``; it never blocks on the pipeline's hot path. A route that does
  something slow (a reload, an encode) runs in the thread pool (a plain ``def`` route, or
  ``run_in_threadpool``), never on the event loop.
* Errors are ``{"detail": "one line"}`` with a 4xx/5xx status; a config error's text is the
  config file's own (``streams[2].url: file not found: ...``).
* Mutations require ``Authorization: Bearer <token>`` (``require_token(token)``, a
  dependency routers may reuse): without a configured token they answer 403 (read-only),
  with a missing or wrong one 401. Reads need no token.
* The app is served by :class:`streams.http.server.HttpServer` (uvicorn on a thread of the
  main process), never inside a worker process.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.bus.metrics import PipelineCollector
from streams.http.control import ApiError, Control

READ_ONLY = (
    "the API is read-only: no token is configured (set http.token in the config, or "
    "$STREAMS_API_TOKEN, and restart) "
)
STREAM_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One streams: entry, as in the config file (docs/configuration.md); "
    "checked by the same code, with the same messages. ${VAR} is not expanded.",
    "required": ["id", "url"],
    "properties": {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
        "url": {"type": "string", "description": "rtsp://..., a file path or sample:NAME"},
        "loop": {"type": "boolean"},
        "fps": {"type": ["number", "null"]},
        "decoder": {"enum": ["auto", "opencv", "nvdec"]},
        "pace": {"enum": ["realtime", "none"]},
        "tracking": {"type": "object"},
        "zones": {"type": "array", "items": {"type": "object"}},
        "lines": {"type": "array", "items": {"type": "object"}},
    },
}
PATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Any of fps, zones, lines, as in the config file; the rest stays.",
    "properties": {
        key: STREAM_ENTRY_SCHEMA["properties"][key] for key in ("fps", "zones", "lines")
    },
}
ERRORS = {
    code: {"description": text, "content": {"application/json": {"example": {"detail": "..."}}}}
    for code, text in (
        (400, "not JSON"),
        (401, "missing or wrong bearer token"),
        (403, "read-only: no token configured"),
        (404, "no such stream"),
        (409, "duplicate id, or the last stream"),
        (422, "invalid entry: the config file's message"),
        (503, "the run is stopping"),
    )
}


def require_token(token: str | None):
    """A dependency: the request must carry ``Authorization: Bearer <token>``."""
    bearer = HTTPBearer(auto_error=False, description="http.token or $STREAMS_API_TOKEN")

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        if token is None:
            raise HTTPException(403, READ_ONLY.strip())
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise HTTPException(
                401,
                "missing 'Authorization: Bearer <token>' header; changes need the API token "
                "(http.token or $STREAMS_API_TOKEN)",
                headers=challenge,
            )
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(
                401, "wrong bearer token: not the API token (http.token)", headers=challenge
            )

    return check


def create_app(
    control: Control,
    *,
    token: str | None,
    routers: Sequence[APIRouter] = (),
    collectors: Sequence[Any] = (),
) -> FastAPI:
    """The app: the routes above over ``control``, then each of ``routers``; ``collectors``:
    more Prometheus collectors on /metrics (the bridges' figures)."""
    app = FastAPI(
        title="streams",
        summary="Real-time video analytics: the streams of a running `streams run`",
        version="1",
    )
    authorized = [Depends(require_token(token))]

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    registry = CollectorRegistry()
    registry.register(PipelineCollector(control.snapshot))
    for collector in collectors:
        registry.register(collector)

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics (what ``metrics.port`` served before)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["health"], responses={503: {"description": "failed or stalled"}})
    def healthz() -> JSONResponse:
        """Alive: the run has not given up and its batcher moves."""
        ok, body = control.health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
    def readyz() -> JSONResponse:
        """Ready: the engine is loaded and at least one stream is live."""
        ok, body = control.ready()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/api/config", tags=["config"])
    def get_config() -> dict:
        """The config in force (API changes included), credentials redacted."""
        return control.config_view()

    @app.get("/api/streams", tags=["streams"])
    def list_streams() -> list[dict]:
        """Every stream: its entry, ``state`` and ``stats`` (fps, p50/p99 ms, counters)."""
        return control.streams()

    @app.post(
        "/api/streams",
        tags=["streams"],
        status_code=201,
        dependencies=authorized,
        responses=ERRORS,
        openapi_extra=_body(STREAM_ENTRY_SCHEMA),
    )
    async def add_stream(request: Request) -> dict:
        """Add a stream; it starts at once (on the worker process with room)."""
        raw = await _json(request)
        return await run_in_threadpool(control.add, raw)

    @app.get("/api/streams/{stream_id}", tags=["streams"], responses={404: ERRORS[404]})
    def get_stream(stream_id: str) -> dict:
        return control.stream(stream_id)

    @app.patch(
        "/api/streams/{stream_id}",
        tags=["streams"],
        dependencies=authorized,
        responses=ERRORS,
        openapi_extra=_body(PATCH_SCHEMA),
    )
    async def change_stream(stream_id: str, request: Request) -> dict:
        """Change a stream's ``fps``, ``zones`` or ``lines``; the stream restarts with them
        (``reconnecting``, then ``live``; ``seq`` carries on); the others are untouched."""
        raw = await _json(request)
        return await run_in_threadpool(control.change, stream_id, raw)

    @app.delete(
        "/api/streams/{stream_id}", tags=["streams"], dependencies=authorized, responses=ERRORS
    )
    def remove_stream(stream_id: str) -> dict:
        """Remove a stream: ``ended`` is published, its worker and decoder are freed."""
        return control.remove(stream_id)

    for router in routers:
        app.include_router(router)
    return app


def _body(schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def _json(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise HTTPException(400, f"request body: not valid JSON ({err})") from None
