"""Per-batch message building (streams.bus.messages.detection_items) gives byte-for-byte the JSON
that the per-frame builder gave, on real decoded detections and on rounding edge cases; and
streams.bus.messages.encode_detection_batch (the completer's encoder) gives the bytes that the
per-frame completer and json.dumps in the publisher thread gave."""

import json

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
    encode_detection_batch,
    validate,
)
from streams.capture.frames import Frame
from tests.processors.test_yolo_batch import real_batch  # noqa: F401  (module fixture)

LABELS = tuple(f"class{i}" for i in range(80))
LATENCY = {
    "decode": 1.23456,
    "queue": 0.0004,
    "preprocess": 2.5,
    "inference": 10.0005,
    "postprocess": 0.1234567,
    "total": 14.99999,
}


def reference_message(
    *, stream_id, seq, pts_s, capture_wall_s, source_hw, model, latency_ms, detections, labels
):
    """detection_message as it was before detection_items (per frame, NumPy per frame)."""
    boxes = np.round(detections.xyxy.astype(np.float64), 1).tolist()
    scores = np.round(detections.scores.astype(np.float64), 4).tolist()
    class_ids = detections.class_ids.tolist()
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
        "detections": [
            {
                "label": labels[c] if 0 <= c < len(labels) else str(c),
                "class_id": c,
                "score": s,
                "box": b,
            }
            for b, s, c in zip(boxes, scores, class_ids)
        ],
    }


def frame_fields(i, hw):
    return {
        "stream_id": f"cam{i}",
        "seq": 100 + i,
        "pts_s": i / 30.0 + 1e-5,
        "capture_wall_s": 1.7e9 + i * 0.0333,
        "source_hw": hw,
        "model": "yolov3-tiny",
        "latency_ms": LATENCY,
    }


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
        want = encode(
            reference_message(**frame_fields(i, hw), detections=detections, labels=labels)
        )
        got = encode(detection_message(**frame_fields(i, hw), items=items[i]))
        assert got == want, f"frame {i}"
        per_frame = encode(
            detection_message(**frame_fields(i, hw), detections=detections, labels=labels)
        )
        assert per_frame == want
        validate(f"det/cam{i}/".encode(), decode(got))
    if labels is LABELS[:3]:
        assert any(e["label"] == str(e["class_id"]) for frame in items for e in frame)


def test_rounding_edge_cases_match():
    tricky = Detections(
        np.array([[0.05, 0.15, 0.25, 2.675], [1.45, 99.95, 100.05, 271.99]], np.float32),
        np.array([0.12345, 0.99995], np.float32),
        np.array([5, 0], np.int32),
    )
    empty = Detections.empty()
    batch = [
        empty,
        tricky,
        empty,
        Detections(tricky.xyxy[:1], tricky.scores[:1], tricky.class_ids[:1]),
    ]
    items = detection_items(batch, LABELS)
    assert [len(frame) for frame in items] == [0, 2, 0, 1]
    for i, detections in enumerate(batch):
        fields = frame_fields(i, (272, 640))
        assert encode(detection_message(**fields, items=items[i])) == encode(
            reference_message(**fields, detections=detections, labels=LABELS)
        )


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


# --- encode_detection_batch: what the completer sends, against the per-frame code it replaced --


def reference_wire(
    frame,
    detections,
    labels,
    *,
    model,
    started_mono_s,
    now_mono_s,
    preprocess_ms,
    inference_ms,
    postprocess_ms,
):
    """The completer's per-frame latency and message, encoded with json.dumps as the publisher
    thread did before (separators=(",", ":"), allow_nan=False): the old bytes on the wire."""
    latency_ms = {
        "decode": frame.decode_ms,
        "queue": (started_mono_s - frame.ready_mono_s) * 1000.0,
        "preprocess": preprocess_ms,
        "inference": inference_ms,
        "postprocess": postprocess_ms,
        "total": frame.decode_ms + (now_mono_s - frame.ready_mono_s) * 1000.0,
    }
    message = reference_message(
        stream_id=frame.stream_id,
        seq=frame.seq,
        pts_s=frame.pts_s,
        capture_wall_s=frame.capture_wall_s,
        source_hw=frame.source_hw,
        model=model,
        latency_ms=latency_ms,
        detections=detections,
        labels=labels,
    )
    return (
        f"det/{frame.stream_id}/".encode(),
        json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8"),
        message,
        latency_ms["total"],
    )


def batch_frames(hws, stream=lambda i: f"cam{i}"):
    image = {hw: np.zeros((*hw, 3), np.uint8) for hw in set(hws)}
    return [
        Frame(
            stream_id=stream(i),
            seq=100 + i,
            pts_s=i / 30.0 + 1e-5,
            capture_wall_s=1.7e9 + i * 0.0333 + 1e-7,
            ready_mono_s=5000.0 + i * 0.0021,
            decode_ms=1.0 + i * 0.37,
            image_bgr=image[hw],
        )
        for i, hw in enumerate(hws)
    ]


TIMES = {
    "started_mono_s": 5000.25,
    "now_mono_s": 5000.31234,
    "preprocess_ms": 2.5004999,
    "inference_ms": 10.0005,
    "postprocess_ms": 0.1234567,
}


@pytest.mark.parametrize("labels", [LABELS, LABELS[:3]])
def test_batch_encoding_gives_the_bytes_json_dumps_gave(real_batch, labels):  # noqa: F811
    output, boxes, hws = real_batch
    batch = decode_yolo_batch(output, "yolov5", boxes, hws, 0.05, 0.45, 100)
    batch += decode_yolo_batch(output, "yolov5", boxes, hws, 0.6, 0.45, 100)
    frames = batch_frames(hws + hws)
    messages, totals = encode_detection_batch(frames, batch, labels, model="yolov3-tiny", **TIMES)
    assert len(messages) == len(totals) == len(frames)
    for i, (frame, detections) in enumerate(zip(frames, batch)):
        topic_b, want, message, total = reference_wire(
            frame, detections, labels, model="yolov3-tiny", **TIMES
        )
        assert messages[i] == (topic_b, want), f"frame {i}"
        assert totals[i] == total
        # and what detection_message + encode give, the builder the other callers use
        assert messages[i][1] == encode(
            detection_message(
                stream_id=frame.stream_id,
                seq=frame.seq,
                pts_s=frame.pts_s,
                capture_wall_s=frame.capture_wall_s,
                source_hw=frame.source_hw,
                model="yolov3-tiny",
                latency_ms=message["latency_ms"],
                detections=detections,
                labels=labels,
            )
        )
        validate(topic_b, decode(messages[i][1]))


def test_rounding_edge_cases_give_the_old_bytes():
    tricky = Detections(
        np.array(
            [
                [0.05, 0.15, 0.25, 2.675],
                [1.45, 99.95, 100.05, 271.99],
                [0.00004, 0.04999, 639.96, 271.95],
            ],
            np.float32,
        ),
        np.array([0.12345, 0.99995, 0.00005], np.float32),
        np.array([5, 0, 79], np.int32),
    )
    batch = [Detections.empty(), tricky, Detections.empty()]
    frames = batch_frames([(272, 640)] * 3)
    # tiny and huge latencies: every float still rounds to >= 1e-4 or to 0
    times = dict(TIMES, preprocess_ms=0.0004999, inference_ms=123456789.0004, postprocess_ms=4e-9)
    messages, _ = encode_detection_batch(frames, batch, LABELS, model="m", **times)
    for frame, detections, (_, payload) in zip(frames, batch, messages, strict=True):
        assert payload == reference_wire(frame, detections, LABELS, model="m", **times)[1]


def test_non_ascii_names_decode_to_the_same_values(real_batch):  # noqa: F811
    """orjson writes UTF-8 where json.dumps wrote escapes: other bytes, the same JSON values."""
    output, boxes, hws = real_batch
    batch = decode_yolo_batch(output, "yolov5", boxes, hws, 0.25, 0.45)
    labels = tuple(f"klasse-{i}-größe-車" for i in range(80))
    frames = batch_frames(hws, stream=lambda i: f"kamera-{i}-straße")
    messages, _ = encode_detection_batch(frames, batch, labels, model="yolo-ß", **TIMES)
    assert any(len(d) for d in batch)
    for frame, detections, (topic_b, payload) in zip(frames, batch, messages, strict=True):
        want_topic, want, _, _ = reference_wire(frame, detections, labels, model="yolo-ß", **TIMES)
        assert topic_b == want_topic and json.loads(payload) == json.loads(want)
        assert payload == encode(json.loads(want))
        validate(topic_b, decode(payload))


def test_a_message_json_cannot_carry_is_left_out_and_the_rest_sent():
    nan_box = Detections(
        np.array([[1, 2, np.nan, 4]], np.float32),
        np.array([0.9], np.float32),
        np.array([0], np.int32),
    )
    fine = Detections(
        np.array([[1, 2, 3, 4]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32)
    )
    frames = batch_frames([(272, 640)] * 3)
    messages, totals = encode_detection_batch(
        frames, [fine, nan_box, fine], LABELS, model="m", **TIMES
    )
    assert [t for t, _ in messages] == [b"det/cam0/", b"det/cam2/"]
    assert len(totals) == 3  # every frame was processed; one message could not be sent
    with pytest.raises(ValueError):  # what json.dumps(allow_nan=False) did with it
        reference_wire(frames[1], nan_box, LABELS, model="m", **TIMES)
