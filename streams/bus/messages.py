"""The published message schema (version 1): topics, builders and a validator.

Every message is a ZeroMQ multipart ``[topic, payload]``; the payload is UTF-8 JSON with
``"v": 1`` and ``"type"``. Topics end with ``/`` so that subscribing to ``det/cam1/`` never
also delivers ``det/cam10/`` (ZeroMQ filters by prefix). See docs/messages.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from processors.detections import Detections
from streams.states import PUBLISHED

SCHEMA_VERSION = 1
KINDS = ("det", "status", "stats")
STATES = PUBLISHED  # every state but "starting" (streams/states.py)
LATENCY_KEYS = ("decode", "queue", "preprocess", "inference", "postprocess", "total")


def topic(kind: str, stream_id: str | None = None) -> str:
    """``det/cam1/``, ``status/cam1/``, ``stats/``; prefix ``det/`` to get every stream."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}; expected one of {KINDS}")
    return f"{kind}/{stream_id}/" if stream_id else f"{kind}/"


def detection_message(
    *, stream_id: str, seq: int, pts_s: float, capture_wall_s: float, source_hw: tuple[int, int],
    model: str, latency_ms: dict[str, float], detections: Detections | None = None,
    labels: Sequence[str] = (), items: list[dict[str, Any]] | None = None,
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
        "v": SCHEMA_VERSION, "type": "det", "stream": stream_id, "seq": seq,
        "pts": round(pts_s, 4), "capture_time": capture_wall_s,
        "width": source_hw[1], "height": source_hw[0], "model": model,
        "latency_ms": {key: round(latency_ms[key], 3) for key in LATENCY_KEYS},
        "detections": items,
    }


def detection_items(batch: Sequence[Detections],
                    labels: Sequence[str]) -> list[list[dict[str, Any]]]:
    """The ``detections`` list of each frame's message, for a whole batch at once.

    Boxes (rounded to 0.1 px) and scores (to 4 decimals) are rounded and turned into Python
    numbers once per batch, not once per frame; each frame gets its own list of new dicts.
    """
    counts = [len(detections) for detections in batch]
    if not any(counts):
        return [[] for _ in counts]
    found = [detections for detections in batch if len(detections)]
    boxes = np.round(np.concatenate([d.xyxy for d in found]).astype(np.float64), 1).tolist()
    scores = np.round(np.concatenate([d.scores for d in found]).astype(np.float64), 4).tolist()
    class_ids = np.concatenate([d.class_ids for d in found]).tolist()
    num_labels = len(labels)
    entries = [
        {"label": labels[c] if 0 <= c < num_labels else str(c), "class_id": c,
         "score": s, "box": b}
        for b, s, c in zip(boxes, scores, class_ids)
    ]
    items = []
    start = 0
    for count in counts:
        items.append(entries[start:start + count])
        start += count
    return items


def status_message(stream_id: str, state: str, *, reason: str | None = None,
                   attempt: int | None = None, **extra: Any) -> dict[str, Any]:
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}; expected one of {STATES}")
    message: dict[str, Any] = {"v": SCHEMA_VERSION, "type": "status", "stream": stream_id,
                               "state": state, "time": time.time()}
    if reason is not None:
        message["reason"] = reason
    if attempt is not None:
        message["attempt"] = attempt
    message.update(extra)
    return message


def stats_message(streams: list[dict], pipeline: dict, uptime_s: float) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "type": "stats", "time": time.time(),
            "uptime_s": round(uptime_s, 3), "streams": streams, "pipeline": pipeline}


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")


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
        raise SchemaError(f"topic {topic_bytes!r} does not match message (expected "
                          f"{expected_topic!r})")
    if kind == "det":
        _validate_det(message)
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


def _field(obj: dict[str, Any], key: str, kind, prefix: str = "") -> Any:
    if key not in obj:
        raise SchemaError(f"{prefix}{key}: missing")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise SchemaError(f"{prefix}{key}: expected {kind}, got {type(value).__name__}")
    return value
