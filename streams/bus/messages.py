"""The published message schema (version 1): topics, builders and a validator.

Every message is a ZeroMQ multipart ``[topic, payload]``; the payload is UTF-8 JSON with
``"v": 1`` and ``"type"``. Topics end with ``/`` so that subscribing to ``det/cam1/`` never
also delivers ``det/cam10/`` (ZeroMQ filters by prefix). See docs/messages.md.

Payloads are encoded with orjson. Decoded, they are what json.dumps wrote: both write each
float in its shortest form that reads back as the same float. The bytes differ in two ways
only: non-ASCII text is written as UTF-8, not as backslash-u escapes, and a float of
magnitude below 1e-4 may be written ``0.00001`` or ``5e-7`` (json.dumps: ``1e-05``,
``5e-07``). A ``det`` message holds no such float (pts, scores and boxes are rounded to 4
decimals or fewer, latencies to 3, capture_time is a clock), so with ASCII names its bytes are
the ones json.dumps wrote: tests/processors/test_batch_messages.py checks both.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from processors.detections import Detections
from streams.states import PUBLISHED

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
KINDS = ("det", "status", "stats", "event", "snapshot", "clip")
TRIGGERS = ("event", "request")  # why a snapshot or clip was made
EVENTS = ("enter", "exit", "dwell", "cross")  # an ``event`` message's ``event``
DIRECTIONS = ("in", "out")  # a ``cross`` event's ``direction``
STATES = PUBLISHED  # every state but "starting" (streams/states.py)
LATENCY_KEYS = ("decode", "queue", "preprocess", "inference", "postprocess", "total")


def topic(kind: str, stream_id: str | None = None) -> str:
    """``det/cam1/``, ``status/cam1/``, ``event/cam1/``, ``stats/``; prefix ``det/`` to get
    every stream."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}; expected one of {KINDS}")
    return f"{kind}/{stream_id}/" if stream_id else f"{kind}/"


def detection_message(
    *,
    stream_id: str,
    seq: int,
    pts_s: float,
    capture_wall_s: float,
    source_hw: tuple[int, int],
    model: str,
    latency_ms: dict[str, float],
    detections: Detections | None = None,
    labels: Sequence[str] = (),
    items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One frame's ``det`` message.

    Give ``detections`` and ``labels``, or ``items``: that frame's entry of
    ``detection_items`` over its whole batch (the same message, built without per-frame NumPy).
    """
    if items is None:
        if detections is None:
            raise TypeError("detection_message needs detections (and labels) or items")
        items = detection_items((detections,), labels)[0]
    return {
        "v": SCHEMA_VERSION,
        "type": "det",
        "stream": stream_id,
        "seq": seq,
        "pts": round(pts_s, 4),
        "capture_time": capture_wall_s,
        "width": source_hw[1],
        "height": source_hw[0],
        "model": model,
        "latency_ms": {key: round(latency_ms[key], 3) for key in LATENCY_KEYS},
        "detections": items,
    }


NO_TRACK_ID = -1  # ``track_id`` of a box whose track is not confirmed (yet)
_UNTRACKED = -2  # internal: the frame's stream has tracking off (no ``track_id`` field)


def detection_items(
    batch: Sequence[Detections],
    labels: Sequence[str],
    track_ids: Sequence[np.ndarray | None] | None = None,
) -> list[list[dict[str, Any]]]:
    """The ``detections`` list of each frame's message, for a whole batch at once.

    Boxes (rounded to 0.1 px) and scores (to 4 decimals) are rounded and turned into Python
    numbers once per batch, not once per frame; each frame gets its own list of new dicts.
    ``track_ids[i]``: frame i's ``(n_i,)`` ids (``-1``: unconfirmed) when its stream is
    tracked, else None; each of its detections then carries ``track_id``.
    """
    counts = [len(detections) for detections in batch]
    if not any(counts):
        return [[] for _ in counts]
    found = [i for i, count in enumerate(counts) if count]
    boxes = np.round(np.concatenate([batch[i].xyxy for i in found]).astype(np.float64), 1)
    scores = np.round(np.concatenate([batch[i].scores for i in found]).astype(np.float64), 4)
    class_ids = np.concatenate([batch[i].class_ids for i in found]).tolist()
    num_labels = len(labels)
    entries = [
        {"label": labels[c] if 0 <= c < num_labels else str(c), "class_id": c, "score": s, "box": b}
        for b, s, c in zip(boxes.tolist(), scores.tolist(), class_ids)
    ]
    if track_ids is not None and any(track_ids[i] is not None for i in found):
        ids = np.concatenate(
            [
                np.full(counts[i], _UNTRACKED) if track_ids[i] is None else track_ids[i]
                for i in found
            ]
        ).tolist()
        for entry, track_id in zip(entries, ids):
            if track_id != _UNTRACKED:
                entry["track_id"] = track_id
    items = []
    start = 0
    for count in counts:
        items.append(entries[start : start + count])
        start += count
    return items


def status_message(
    stream_id: str,
    state: str,
    *,
    reason: str | None = None,
    attempt: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}; expected one of {STATES}")
    message: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "type": "status",
        "stream": stream_id,
        "state": state,
        "time": time.time(),
    }
    if reason is not None:
        message["reason"] = reason
    if attempt is not None:
        message["attempt"] = attempt
    message.update(extra)
    return message


def event_message(
    *,
    stream_id: str,
    event: str,
    name: str,
    track_id: int,
    label: str,
    class_id: int,
    pts_s: float,
    capture_wall_s: float,
    seq: int,
    direction: str | None = None,
    dwell_s: float | None = None,
) -> dict[str, Any]:
    """One zone or line event of a tracked object (``event/<stream>/``).

    ``name`` goes in ``line`` for a ``cross`` event, in ``zone`` otherwise; ``direction``
    only for ``cross``, ``dwell_s`` only for ``exit`` and ``dwell``.
    """
    message: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "type": "event",
        "stream": stream_id,
        "event": event,
        "line" if event == "cross" else "zone": name,
        "track_id": track_id,
        "class": label,
        "class_id": class_id,
        "pts": round(pts_s, 4),
        "capture_time": capture_wall_s,
        "seq": seq,
    }
    if direction is not None:
        message["direction"] = direction
    if dwell_s is not None:
        message["dwell_s"] = round(dwell_s, 3)
    return message


def record_message(
    kind: str,
    *,
    stream_id: str,
    path: str,
    size: int,
    trigger: str,
    events: list[dict[str, Any]],
    pts_s: float | None = None,
    seq: int | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
) -> dict[str, Any]:
    """A ``snapshot`` (``pts``, ``seq`` of its frame) or ``clip`` (``start``, ``end``: the
    shown times it covers) written to ``path``; ``events``: what it was made for (each with
    ``event``, ``zone`` or ``line``, ``track_id``, ``pts``, ``seq``), empty on request."""
    message: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "type": kind,
        "stream": stream_id,
        "time": time.time(),
        "path": path,
        "bytes": size,
        "trigger": trigger,
        "events": events,
    }
    if kind == "snapshot":
        message["pts"] = round(pts_s, 4)
        if seq is not None:
            message["seq"] = seq
    else:
        message["start"] = round(start_s, 4)
        message["end"] = round(end_s, 4)
    return message


def stats_message(streams: list[dict], pipeline: dict, uptime_s: float) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "type": "stats",
        "time": time.time(),
        "uptime_s": round(uptime_s, 3),
        "streams": streams,
        "pipeline": pipeline,
    }


# orjson writes numpy scalars as numbers (json.dumps took np.float64, a float subclass);
# encode() also takes non-str keys as json.dumps did. A det message has neither.
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_DET_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def encode(message: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON. TypeError for what JSON cannot carry; ValueError for NaN or infinity,
    as json.dumps(allow_nan=False) did (orjson writes those as null)."""
    payload = orjson.dumps(message, option=_OPTIONS)
    if b"null" in payload:  # a None, or a NaN/inf written as null: look which
        _check_finite(message)
    return payload


def _check_finite(value: Any) -> None:
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    elif isinstance(value, dict):
        for item in value.values():
            _check_finite(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_finite(item)
    elif (
        isinstance(value, np.ndarray) and value.dtype.kind in "fc" and not np.isfinite(value).all()
    ):
        raise ValueError("Out of range float values are not JSON compliant")


@lru_cache(maxsize=4096)
def topic_bytes(kind: str, stream_id: str | None = None) -> bytes:
    """``topic(kind, stream_id)`` as sent: bytes, made once per stream (``preview`` too)."""
    if kind == PREVIEW:
        return preview_topic(stream_id).encode()
    return topic(kind, stream_id).encode()


# --- preview: the browser view's pictures -------------------------------------------------------
# Not one of KINDS: a subscriber to every kind must not get (nor cause: streams/runtime/
# preview.py makes them only for an exact ``preview/<id>/`` subscription) JPEGs it never asked
# for. The payload is a one-line JSON header, a newline, then the JPEG (docs/messages.md).
PREVIEW = "preview"


def preview_topic(stream_id: str | None) -> str:
    """``preview/cam1/``: one stream's pictures, made only while somebody subscribes to it."""
    if not stream_id:
        raise ValueError("a preview topic names its stream: preview/<id>/")
    return f"{PREVIEW}/{stream_id}/"


def preview_payload(
    *,
    stream_id: str,
    seq: int,
    pts_s: float,
    capture_wall_s: float,
    source_hw: tuple[int, int],
    picture_hw: tuple[int, int],
    detections: int,
    jpeg: bytes,
) -> bytes:
    """Header line (orjson never writes a raw newline) + ``\\n`` + the JPEG bytes."""
    header = {
        "v": SCHEMA_VERSION,
        "type": PREVIEW,
        "stream": stream_id,
        "seq": seq,
        "pts": round(pts_s, 4),
        "capture_time": capture_wall_s,
        "width": source_hw[1],
        "height": source_hw[0],
        "picture_width": picture_hw[1],
        "picture_height": picture_hw[0],
        "detections": detections,
    }
    return orjson.dumps(header) + b"\n" + jpeg


def decode_preview(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, JPEG bytes) of a ``preview`` payload; ValueError if it is not one."""
    header, sep, jpeg = payload.partition(b"\n")
    if not sep or not jpeg.startswith(b"\xff\xd8"):
        raise ValueError("not a preview payload (a JSON header line, then a JPEG)")
    message = orjson.loads(header)
    if not isinstance(message, dict) or message.get("type") != PREVIEW:
        raise ValueError("not a preview payload (its header's type is not 'preview')")
    return message, jpeg


def encode_detection_batch(
    frames: Sequence[Any],
    batch: Sequence[Detections],
    labels: Sequence[str],
    *,
    model: str,
    started_mono_s: float,
    now_mono_s: float,
    preprocess_ms: float,
    inference_ms: float,
    postprocess_ms: float,
    track_ids: Sequence[np.ndarray | None] | None = None,
) -> tuple[list[tuple[bytes, bytes]], list[float]]:
    """Every ``det`` message of one batch, encoded: ``(topic, payload)`` pairs to hand to the
    publisher in one go, and each frame's ``total`` latency in ms.

    Args:
        frames: the batch's frames (:class:`streams.capture.frames.Frame`: ``stream_id``,
            ``seq``, ``pts_s``, ``capture_wall_s``, ``ready_mono_s``, ``decode_ms``,
            ``source_hw``); ``batch``: their detections, in the same order.
        started_mono_s: when the batch started (``queue`` ends there).
        now_mono_s: now, just before the messages are handed to the publisher (``total``
            ends there).
        preprocess_ms, inference_ms, postprocess_ms: the batch's, the same in every message.
        track_ids: per frame, its boxes' track ids, or None where its stream is not tracked
            (see :func:`detection_items`).

    Each payload is ``encode(detection_message(...))`` of that frame (one definition of
    the schema), with the detections converted for the whole batch at once. A message that
    JSON cannot carry (a NaN box) is logged and left out, as the publisher used to drop it;
    the caller counts ``len(frames) - len(messages)`` as dropped.
    """
    items = detection_items(batch, labels, track_ids)
    messages: list[tuple[bytes, bytes]] = []
    totals_ms: list[float] = []
    dumps = orjson.dumps
    for frame, frame_items in zip(frames, items, strict=True):
        total_ms = frame.decode_ms + (now_mono_s - frame.ready_mono_s) * 1000.0
        totals_ms.append(total_ms)
        message = detection_message(
            stream_id=frame.stream_id,
            seq=frame.seq,
            pts_s=frame.pts_s,
            capture_wall_s=frame.capture_wall_s,
            source_hw=frame.source_hw,
            model=model,
            latency_ms={
                "decode": frame.decode_ms,
                "queue": (started_mono_s - frame.ready_mono_s) * 1000.0,
                "preprocess": preprocess_ms,
                "inference": inference_ms,
                "postprocess": postprocess_ms,
                "total": total_ms,
            },
            items=frame_items,
        )
        try:
            payload = dumps(message, option=_DET_OPTIONS)
            if b"null" in payload:
                _check_finite(message)
        except (TypeError, ValueError) as err:
            logger.error("cannot publish %s: %s", topic("det", frame.stream_id), err)
            continue
        messages.append((topic_bytes("det", frame.stream_id), payload))
    return messages, totals_ms


def decode(payload: bytes) -> dict[str, Any]:
    return json.loads(payload.decode("utf-8"))


# --- validation (used by tests and `streams subscribe --validate`) -------------------------------


class SchemaError(ValueError):
    """A message does not match the documented schema."""


def validate(topic_bytes: bytes, message: dict[str, Any]) -> None:
    """Raise SchemaError naming the first field that is missing or of the wrong type."""
    _field(message, "v", int)
    if message["v"] != SCHEMA_VERSION:
        raise SchemaError(f"v: expected {SCHEMA_VERSION}, got {message['v']}")
    kind = _field(message, "type", str)
    if kind not in KINDS:
        raise SchemaError(f"type: unknown kind {kind!r}")
    stream = message.get("stream")
    expected_topic = topic(kind, stream if kind != "stats" else None).encode()
    if topic_bytes != expected_topic:
        raise SchemaError(
            f"topic {topic_bytes!r} does not match message (expected {expected_topic!r})"
        )
    if kind == "det":
        _validate_det(message)
    elif kind == "event":
        _validate_event(message)
    elif kind in ("snapshot", "clip"):
        _validate_record(message, kind)
    elif kind == "status":
        _field(message, "stream", str)
        if _field(message, "state", str) not in STATES:
            raise SchemaError(f"state: unknown state {message['state']!r}")
        _field(message, "time", float)
    else:
        _field(message, "time", float)
        _field(message, "uptime_s", (int, float))
        for item in _field(message, "streams", list):
            for key in ("stream", "state", "fps", "processed", "dropped"):
                if key not in item:
                    raise SchemaError(f"streams[].{key}: missing")
        _field(message, "pipeline", dict)


def _validate_det(message: dict[str, Any]) -> None:
    _field(message, "stream", str)
    if _field(message, "seq", int) < 0:
        raise SchemaError("seq: must be >= 0")
    _field(message, "pts", (int, float))
    _field(message, "capture_time", float)
    width, height = _field(message, "width", int), _field(message, "height", int)
    _field(message, "model", str)
    latency = _field(message, "latency_ms", dict)
    for key in LATENCY_KEYS:
        _field(latency, key, (int, float), prefix="latency_ms.")
    for i, det in enumerate(_field(message, "detections", list)):
        where = f"detections[{i}]."
        _field(det, "label", str, prefix=where)
        _field(det, "class_id", int, prefix=where)
        score = _field(det, "score", (int, float), prefix=where)
        if not 0.0 <= score <= 1.0:
            raise SchemaError(f"{where}score: {score} outside [0, 1]")
        box = _field(det, "box", list, prefix=where)
        if len(box) != 4:
            raise SchemaError(f"{where}box: expected 4 numbers, got {len(box)}")
        x1, y1, x2, y2 = box
        if not (0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height):
            raise SchemaError(f"{where}box: {box} not inside the {width}x{height} frame")
        if "track_id" in det:
            track_id = _field(det, "track_id", int, prefix=where)
            if track_id < 1 and track_id != NO_TRACK_ID:
                raise SchemaError(f"{where}track_id: {track_id} (expected >= 1, or -1)")


def _validate_event(message: dict[str, Any]) -> None:
    _field(message, "stream", str)
    event = _field(message, "event", str)
    if event not in EVENTS:
        raise SchemaError(f"event: unknown event {event!r}; expected one of {EVENTS}")
    named, other = ("line", "zone") if event == "cross" else ("zone", "line")
    _field(message, named, str)
    if other in message:
        raise SchemaError(f"{other}: a {event!r} event names a {named}, not a {other}")
    if _field(message, "track_id", int) < 1:
        raise SchemaError(f"track_id: {message['track_id']} (expected >= 1)")
    _field(message, "class", str)
    _field(message, "class_id", int)
    _field(message, "pts", (int, float))
    _field(message, "capture_time", float)
    if _field(message, "seq", int) < 0:
        raise SchemaError("seq: must be >= 0")
    if event == "cross":
        if _field(message, "direction", str) not in DIRECTIONS:
            raise SchemaError(f"direction: {message['direction']!r}; expected in or out")
    elif "direction" in message:
        raise SchemaError(f"direction: only 'cross' events have one, not {event!r}")
    if event in ("exit", "dwell"):
        if _field(message, "dwell_s", (int, float)) < 0:
            raise SchemaError(f"dwell_s: {message['dwell_s']} is negative")
    elif "dwell_s" in message:
        raise SchemaError(f"dwell_s: only 'exit' and 'dwell' events have one, not {event!r}")


def _validate_record(message: dict[str, Any], kind: str) -> None:
    _field(message, "stream", str)
    _field(message, "time", float)
    _field(message, "path", str)
    if _field(message, "bytes", int) <= 0:
        raise SchemaError(f"bytes: {message['bytes']} (a written file is not empty)")
    if _field(message, "trigger", str) not in TRIGGERS:
        raise SchemaError(f"trigger: {message['trigger']!r}; expected one of {TRIGGERS}")
    for i, event in enumerate(_field(message, "events", list)):
        where = f"events[{i}]."
        if _field(event, "event", str, prefix=where) not in EVENTS:
            raise SchemaError(f"{where}event: unknown event {event['event']!r}")
        if ("zone" in event) == ("line" in event):
            raise SchemaError(f"{where}: names a zone or a line (one of them)")
        _field(event, "track_id", int, prefix=where)
        _field(event, "pts", (int, float), prefix=where)
        _field(event, "seq", int, prefix=where)
    if kind == "snapshot":
        _field(message, "pts", (int, float))
    else:
        start, end = _field(message, "start", (int, float)), _field(message, "end", (int, float))
        if end < start:
            raise SchemaError(f"end: {end} is before start {start}")


def _field(obj: dict[str, Any], key: str, kind, prefix: str = "") -> Any:
    if key not in obj:
        raise SchemaError(f"{prefix}{key}: missing")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise SchemaError(f"{prefix}{key}: expected {kind}, got {type(value).__name__}")
    return value
