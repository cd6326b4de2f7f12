"""What the REST API does to a running pipeline, apart from HTTP (status codes, routes).

Every change is a new Config (one stream added, removed or changed, by the same checks as
the config file: ``streams.config.add_stream`` / ``change_stream``) applied with the
run's ``reload``, the path SIGHUP takes: a removed stream publishes ``ended`` and its
capture worker leaves (its thread, sockets and decoder session with it), an added one starts,
and with worker processes the supervisor sends each worker its new share. One change at a
time, SIGHUP's included (``lock``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.config import Config, DuplicateStream, add_stream, change_stream
from streams.errors import ConfigError, StreamsError
from streams.redact import redact_url
from streams.runtime.reload import ReloadRefused

if TYPE_CHECKING:
    from streams.runtime.runnable import Runnable

logger = logging.getLogger("streams")

STALLED_S = 30.0  # /healthz fails once the batcher has not moved for this long


class ApiError(StreamsError):
    """An error a client caused or must wait out; ``status`` is its HTTP status code."""

    status = 400


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Invalid(ApiError):
    status = 422


class Unavailable(ApiError):
    status = 503


class Control:
    """The API's operations on ``run`` (a Pipeline or a Supervisor).

    Args:
        run: the running pipeline; its ``config`` is the config in force.
        base_dir: where relative file paths in a new stream resolve from (the config file's
            directory, as for the file's own streams).
        lock: held while a change applies; the SIGHUP reloader takes the same one.
    """

    def __init__(
        self, run: Runnable, base_dir: Path = Path("."), lock: threading.Lock | None = None
    ) -> None:
        self.run = run
        self.base_dir = base_dir
        self.lock = lock or threading.Lock()
        self.started = threading.Event()  # set once run.start() returned (engine loaded)

    @property
    def config(self) -> Config:
        return self.run.config

    def snapshot(self) -> dict:
        return self.run.snapshot()

    # --- reads ----------------------------------------------------------------------------------

    def streams(self) -> list[dict]:
        """Every stream: its config entry (credentials redacted), state and figures."""
        rows = {row["stream"]: row for row in self.snapshot()["streams"]}
        return [_stream_view(s, rows.get(s.id)) for s in self.config.streams]

    def stream(self, stream_id: str) -> dict:
        for stream in self.config.streams:
            if stream.id == stream_id:
                rows = {row["stream"]: row for row in self.snapshot()["streams"]}
                return _stream_view(stream, rows.get(stream_id))
        raise self._unknown(stream_id)

    def config_view(self) -> dict:
        """The config in force as JSON: camera credentials and the API token redacted."""
        return redacted_config(self.config)

    def health(self) -> tuple[bool, dict]:
        """Alive: the run has not given up and its batcher moves (what a service manager
        restarts on)."""
        if self.run.fatal is not None:
            return False, {"status": "failed", "reason": self.run.fatal}
        stalled = self.run.stalled_s() if self.started.is_set() else 0.0
        if stalled > STALLED_S:
            return False, {"status": "stalled", "reason": f"no batch for {stalled:.0f} s"}
        return True, {"status": "ok"}

    def ready(self) -> tuple[bool, dict]:
        """Ready for traffic: the engine is loaded (the run started) and streams are live."""
        rows = self.snapshot()["streams"]
        live = [r["stream"] for r in rows if r["state"] == "live"]
        body = {
            "engine_loaded": self.started.is_set(),
            "streams": len(rows),
            "live": len(live),
            "not_live": {r["stream"]: r["state"] for r in rows if r["state"] != "live"},
        }
        ok = self.started.is_set() and bool(live) and self.run.fatal is None
        return ok, {"status": "ready" if ok else "not ready", **body}

    # --- changes --------------------------------------------------------------------------------

    def add(self, raw: Any) -> dict:
        """Start one more stream (``raw``: one ``streams:`` entry); its view."""
        with self.lock:
            config = self.config
            try:
                new = add_stream(config, raw, self.base_dir)
            except DuplicateStream as err:
                raise Conflict(str(err)) from err
            except ConfigError as err:
                raise Invalid(str(err)) from err
            self._apply(new, f"added stream {new.streams[-1].id}")
        return self.stream(new.streams[-1].id)

    def change(self, stream_id: str, raw: Any) -> dict:
        """Replace a stream's ``fps``, ``zones`` or ``lines``; its view."""
        with self.lock:
            config = self.config
            if not any(s.id == stream_id for s in config.streams):
                raise self._unknown(stream_id)
            try:
                new = change_stream(config, stream_id, raw)
            except ConfigError as err:
                raise Invalid(str(err)) from err
            self._apply(new, f"changed stream {stream_id} ({', '.join(raw)})")
        return self.stream(stream_id)

    def remove(self, stream_id: str) -> dict:
        """Stop a stream: ``ended`` is published and its worker leaves."""
        with self.lock:
            config = self.config
            if not any(s.id == stream_id for s in config.streams):
                raise self._unknown(stream_id)
            if len(config.streams) == 1:
                raise Conflict(
                    f"stream {stream_id!r} is the last one; a run needs at least one stream "
                    "(streams: expected a non-empty list)"
                )
            kept = tuple(s for s in config.streams if s.id != stream_id)
            self._apply(dataclasses.replace(config, streams=kept), f"removed stream {stream_id}")
        return {"removed": stream_id}

    def _apply(self, config: Config, what: str) -> None:
        if not self.started.is_set():  # its streams are not running yet: nothing to change
            raise Unavailable(
                "the run is still starting (its engine loads); try again once GET /readyz "
                "says engine_loaded"
            )
        try:
            plan = self.run.reload(config)
        except ReloadRefused as err:
            raise Unavailable(f"not applied: {err}") from err
        except ConfigError as err:
            raise Invalid(str(err)) from err
        logger.info("api: %s (%s)", what, plan.describe())

    def _unknown(self, stream_id: str) -> NotFound:
        ids = ", ".join(s.id for s in self.config.streams)
        return NotFound(f"no stream {stream_id!r}; streams: {ids}")


def _stream_view(stream, row: dict | None) -> dict:
    entry = _jsonable(dataclasses.asdict(stream))
    entry["url"] = redact_url(stream.url)
    stats = dict(row) if row else {}
    stats.pop("stream", None)
    return {**entry, "state": stats.pop("state", "starting"), "stats": stats}


def redacted_config(config: Config) -> dict:
    """``config`` as JSON-ready dicts, without secrets (camera passwords, ``http.token``)."""
    view = _jsonable(dataclasses.asdict(config))
    for stream in view["streams"]:
        stream["url"] = redact_url(stream["url"])
    if view["http"]["token"] is not None:
        view["http"]["token"] = "***"
    return view


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
