import numpy as np
import pytest

from processors.detections import Detections
from streams.bus.messages import (
    KINDS,
    SchemaError,
    decode,
    detection_items,
    detection_message,
    encode,
    event_message,
    stats_message,
    status_message,
    topic,
    validate,
)
from streams.redact import redact_url


def test_topics_end_with_a_separator_so_prefixes_are_exact():
    assert topic("det", "cam1") == "det/cam1/"
    assert not topic("det", "cam10").startswith(topic("det", "cam1"))
    assert topic("stats") == "stats/"
    with pytest.raises(ValueError):
        topic("video", "cam1")


def make_det(**overrides):
    dets = Detections(
        np.array([[1, 2, 30, 40]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32)
    )
    kwargs = {
        "stream_id": "cam1",
        "seq": 3,
        "pts_s": 0.12,
        "capture_wall_s": 1.7e9,
        "source_hw": (272, 640),
        "model": "yolov3-tiny",
        "detections": dets,
        "labels": ("person",),
        "latency_ms": dict.fromkeys(
            ("decode", "queue", "preprocess", "inference", "postprocess", "total"), 1.0
        ),
    }
    kwargs.update(overrides)
    return detection_message(**kwargs)


def test_detection_message_round_trips_and_validates():
    message = decode(encode(make_det()))
    validate(b"det/cam1/", message)
    assert message["detections"] == [
        {"label": "person", "class_id": 0, "score": 0.9, "box": [1.0, 2.0, 30.0, 40.0]}
    ]


def test_track_ids_go_on_the_tracked_frames_detections_only():
    """One call for a batch of three frames: tracked (ids given), untracked (None), tracked."""
    two = Detections(
        np.array([[1, 2, 30, 40], [5, 5, 9, 9]], np.float32),
        np.array([0.9, 0.3], np.float32),
        np.array([0, 0], np.int32),
    )
    items = detection_items(
        [two, two, two], ("person",), [np.array([4, -1]), None, np.array([1, 2])]
    )
    assert [[d.get("track_id") for d in frame] for frame in items] == [
        [4, -1],
        [None, None],
        [1, 2],
    ]
    assert all("track_id" not in d for d in items[1])
    assert detection_items([two], ("person",)) == detection_items([two], ("person",), [None])
    for frame in items:
        validate(b"det/cam1/", decode(encode(make_det(detections=None, items=frame))))


def test_status_and_stats_validate():
    validate(
        b"status/cam1/",
        decode(encode(status_message("cam1", "reconnecting", reason="refused", attempt=2))),
    )
    validate(
        b"stats/",
        decode(
            encode(
                stats_message(
                    [{"stream": "a", "state": "live", "fps": 1.0, "processed": 1, "dropped": 0}],
                    {},
                    1.0,
                )
            )
        ),
    )


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: m.pop("seq"), "seq: missing"),
        (lambda m: m.update(v=2), "v: expected 1"),
        (lambda m: m["latency_ms"].pop("total"), "latency_ms.total: missing"),
        (lambda m: m["detections"][0].update(score=1.5), r"score: 1.5 outside"),
        (lambda m: m["detections"][0].update(box=[0, 0, 700, 10]), "not inside the 640x272 frame"),
        (lambda m: m.update(seq="3"), "seq: expected"),
        (lambda m: m["detections"][0].update(track_id=0), r"track_id: 0 \(expected >= 1, or -1\)"),
        (lambda m: m["detections"][0].update(track_id="4"), "track_id: expected"),
    ],
)
def test_validation_names_the_bad_field(mutate, message):
    det = decode(encode(make_det()))
    mutate(det)
    with pytest.raises(SchemaError, match=message):
        validate(b"det/cam1/", det)


def test_topic_must_match_the_stream():
    with pytest.raises(SchemaError, match="does not match"):
        validate(b"det/cam10/", decode(encode(make_det())))


def test_unknown_state_is_rejected():
    with pytest.raises(ValueError):
        status_message("cam1", "sleeping")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rtsp://admin:secret@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
        (
            "cannot open rtsp://u@h/x and http://a:b@c/",
            "cannot open rtsp://***@h/x and http://***@c/",
        ),
        ("rtsp://camera.local/live", "rtsp://camera.local/live"),
    ],
)
def test_redact_url(text, expected):
    assert redact_url(text) == expected


def test_encode_refuses_nan_and_infinity_as_json_dumps_did():
    for bad in (float("nan"), float("inf"), np.float64("-inf")):
        with pytest.raises(ValueError, match="not JSON compliant"):
            encode({"v": 1, "pipeline": {"inference_p50_ms": [1.0, bad]}})
    assert encode({"p50_ms": None, "reason": "null"}) == b'{"p50_ms":null,"reason":"null"}'


def test_encode_gives_the_values_json_dumps_gave():
    import json

    ascii_messages = [
        status_message("cam1", "live", width=640, height=272, decoder="opencv"),
        stats_message(
            [
                {
                    "stream": "a",
                    "state": "live",
                    "fps": 29.97,
                    "p50_ms": None,
                    "p99_ms": 80.31,
                    "processed": 10**12,
                    "dropped": 0,
                }
            ],
            {"batches": 3, "mean_batch": 2.67, "threads_cpu_pct": {1: 2.5}},
            12.345,
        ),
    ]
    for message in ascii_messages:  # the same bytes
        assert encode(message) == json.dumps(message, separators=(",", ":")).encode()
    reason = status_message(
        "cam-ü", "reconnecting", reason="Verbindung verweigert: 東京", attempt=2
    )
    assert json.loads(encode(reason)) == json.loads(json.dumps(reason))  # UTF-8, not escapes
    numpy_values = {"fps": np.float64(29.97), "processed": np.int64(5)}  # json.dumps: float only
    assert json.loads(encode(numpy_values)) == {"fps": 29.97, "processed": 5}


def an_event(**overrides) -> dict:
    message = event_message(
        stream_id="street",
        event="cross",
        name="road",
        track_id=7,
        label="car",
        class_id=2,
        pts_s=12.40004,
        capture_wall_s=1764000012.5,
        seq=310,
        direction="in",
    )
    return {**message, **overrides}


def test_event_messages_round_trip_and_validate():
    cross = an_event()
    assert cross["line"] == "road" and "zone" not in cross and cross["pts"] == 12.4
    validate(b"event/street/", decode(encode(cross)))
    exit_ = event_message(
        stream_id="street", event="exit", name="door", track_id=4, label="person", class_id=0,
        pts_s=15.0, capture_wall_s=1764000015.1, seq=375, dwell_s=6.23456,
    )  # fmt: skip
    assert exit_["zone"] == "door" and exit_["dwell_s"] == 6.235 and "direction" not in exit_
    validate(topic("event", "street").encode(), exit_)
    assert topic("event", "street") == "event/street/" and "event" in KINDS


@pytest.mark.parametrize(
    "message, error",
    [
        (an_event(event="wave"), r"^event: unknown event 'wave'"),
        (an_event(direction="up"), r"^direction: 'up'; expected in or out"),
        ({k: v for k, v in an_event().items() if k != "direction"}, r"^direction: missing"),
        (an_event(zone="door"), r"^zone: a 'cross' event names a line, not a zone"),
        ({**an_event(event="enter", zone="door"), "line": None}, r"^line: a 'enter' event"),
        (an_event(track_id=-1), r"^track_id: -1 \(expected >= 1\)"),
        (an_event(seq=-3), r"^seq: must be >= 0"),
        (an_event(dwell_s=2.0), r"^dwell_s: only 'exit' and 'dwell' events have one"),
        (an_event(**{"class": 2}), r"^class: expected"),
    ],
)
def test_event_validation_names_the_bad_field(message, error):
    with pytest.raises(SchemaError, match=error):
        validate(b"event/street/", message)


def test_exit_and_dwell_events_need_their_dwell_time():
    enter = {k: v for k, v in an_event(event="enter").items() if k not in ("line", "direction")}
    validate(b"event/street/", {**enter, "zone": "door"})
    with pytest.raises(SchemaError, match=r"^dwell_s: missing"):
        validate(b"event/street/", {**enter, "zone": "door", "event": "dwell"})
    with pytest.raises(SchemaError, match=r"^direction: only 'cross' events have one"):
        validate(b"event/street/", {**enter, "zone": "door", "direction": "in"})
    with pytest.raises(SchemaError, match=r"topic b'event/other/' does not match"):
        validate(b"event/other/", {**enter, "zone": "door"})


def test_subscribe_knows_every_kind():
    """The CLI keeps its own copy of KINDS (building the parser imports no NumPy/orjson)."""
    from streams.cli.main import KINDS as CLI_KINDS

    assert CLI_KINDS == KINDS
