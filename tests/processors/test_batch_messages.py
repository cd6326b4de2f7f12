"""Per-batch message building (streams.bus.messages.detection_items) gives byte-for-byte the JSON
that the per-frame builder gave, on real decoded detections and on rounding edge cases."""

import numpy as np
import pytest

from processors.detections import Detections
from processors.yolo import decode_yolo_batch
from streams.bus.messages import (
    LATENCY_KEYS,
    SCHEMA_VERSION,
    decode,
    detection_items,
    detection_message,
    encode,
    validate,
)
from tests.processors.test_yolo_batch import real_batch  # noqa: F401  (module fixture)

LABELS = tuple(f"class{i}" for i in range(80))
LATENCY = {"decode": 1.23456, "queue": 0.0004, "preprocess": 2.5, "inference": 10.0005,
           "postprocess": 0.1234567, "total": 14.99999}


def reference_message(*, stream_id, seq, pts_s, capture_wall_s, source_hw, model, latency_ms,
                      detections, labels):
    """detection_message as it was before detection_items (per frame, NumPy per frame)."""
    boxes = np.round(detections.xyxy.astype(np.float64), 1).tolist()
    scores = np.round(detections.scores.astype(np.float64), 4).tolist()
    class_ids = detections.class_ids.tolist()
    return {
        "v": SCHEMA_VERSION, "type": "det", "stream": stream_id, "seq": seq,
        "pts": round(pts_s, 4), "capture_time": capture_wall_s,
        "width": source_hw[1], "height": source_hw[0], "model": model,
        "latency_ms": {key: round(latency_ms[key], 3) for key in LATENCY_KEYS},
        "detections": [
            {"label": labels[c] if 0 <= c < len(labels) else str(c), "class_id": c,
             "score": s, "box": b}
            for b, s, c in zip(boxes, scores, class_ids)
        ],
    }


def frame_fields(i, hw):
    return {"stream_id": f"cam{i}", "seq": 100 + i, "pts_s": i / 30.0 + 1e-5,
            "capture_wall_s": 1.7e9 + i * 0.0333, "source_hw": hw, "model": "yolov3-tiny",
            "latency_ms": LATENCY}


@pytest.mark.parametrize("labels", [LABELS, LABELS[:3]])  # short: unnamed ids as str(c)
def test_batch_items_give_the_same_bytes_as_the_per_frame_builder(real_batch, labels):  # noqa: F811
    output, boxes, hws = real_batch
    # Many detections in some frames, none in others.
    batch = decode_yolo_batch(output, "yolov5", boxes, hws, 0.05, 0.45, 100)
    batch += decode_yolo_batch(output, "yolov5", boxes, hws, 0.6, 0.45, 100)
    hws = hws + hws
    assert sum(len(d) for d in batch) >= 30 and any(len(d) == 0 for d in batch)
    items = detection_items(batch, labels)
    assert len(items) == len(batch)
    for i, (detections, hw) in enumerate(zip(batch, hws)):
        want = encode(reference_message(**frame_fields(i, hw), detections=detections,
                                        labels=labels))
        got = encode(detection_message(**frame_fields(i, hw), items=items[i]))
        assert got == want, f"frame {i}"
        per_frame = encode(detection_message(**frame_fields(i, hw), detections=detections,
                                             labels=labels))
        assert per_frame == want
        validate(f"det/cam{i}/".encode(), decode(got))
    if labels is LABELS[:3]:
        assert any(e["label"] == str(e["class_id"]) for frame in items for e in frame)


def test_rounding_edge_cases_match():
    tricky = Detections(
        np.array([[0.05, 0.15, 0.25, 2.675], [1.45, 99.95, 100.05, 271.99]], np.float32),
        np.array([0.12345, 0.99995], np.float32), np.array([5, 0], np.int32))
    empty = Detections.empty()
    batch = [empty, tricky, empty, Detections(tricky.xyxy[:1], tricky.scores[:1],
                                              tricky.class_ids[:1])]
    items = detection_items(batch, LABELS)
    assert [len(frame) for frame in items] == [0, 2, 0, 1]
    for i, detections in enumerate(batch):
        fields = frame_fields(i, (272, 640))
        assert encode(detection_message(**fields, items=items[i])) == encode(
            reference_message(**fields, detections=detections, labels=LABELS))


def test_empty_batches():
    assert detection_items([], LABELS) == []
    items = detection_items([Detections.empty()] * 3, LABELS)
    assert items == [[], [], []]
    assert items[0] is not items[1]


def test_frames_get_their_own_entries(real_batch):  # noqa: F811
    output, boxes, hws = real_batch
    batch = decode_yolo_batch(output, "yolov5", boxes, hws, 0.25, 0.45)
    items = detection_items(batch, LABELS)
    entries = [id(entry) for frame in items for entry in frame]
    assert len(entries) == len(set(entries)) == sum(len(d) for d in batch)
    for frame, detections in zip(items, batch):
        assert [e["class_id"] for e in frame] == detections.class_ids.tolist()
        assert all(type(e["class_id"]) is int and type(e["score"]) is float for e in frame)


def test_message_needs_detections_or_items():
    with pytest.raises(TypeError, match="detections"):
        detection_message(**frame_fields(0, (272, 640)))
