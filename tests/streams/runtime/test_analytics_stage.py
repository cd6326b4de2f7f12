"""The pipeline's zone and line stage without a pipeline: class names against the labels the
engine runs with, counts kept over a reload by name, the live-time frame check."""

from __future__ import annotations

import numpy as np
import pytest

from processors.detections import Detections
from processors.labels import COCO80
from streams.capture.frames import Frame
from streams.config import parse_config
from streams.errors import ConfigError
from streams.runtime.analytics import AnalyticsStage, plan_analytics
from streams.runtime.stats import StreamStats

SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


def config(zones=(), lines=(), **stream):
    return parse_config(
        {
            "streams": [
                {"id": "other", "url": "rtsp://h/o"},
                {
                    "id": "cam",
                    "url": "rtsp://h/c",
                    "tracking": {"enabled": True},
                    "zones": list(zones),
                    "lines": list(lines),
                    **stream,
                },
            ]
        }
    )


def frame(seq: int, segment: int = 1, hw=(200, 300)) -> Frame:
    return Frame(
        "cam", seq, seq / 10, 1000.0 + seq, 0.0, 0.0, np.zeros((*hw, 3), np.uint8), segment=segment
    )


def person_at(x: float, y: float) -> Detections:
    box = np.array([[x - 5, y - 20, x + 5, y]], np.float32)
    return Detections(box, np.array([0.9], np.float32), np.array([0], np.int64))


def test_class_names_are_checked_against_the_labels_the_pipeline_runs_with():
    cfg = config(zones=[{"name": "z", "points": SQUARE, "classes": ["person"]}])
    plans = plan_analytics(cfg, COCO80)
    assert plans["cam"].zone_classes == ((0,),) and "other" not in plans
    with pytest.raises(
        ConfigError, match=r"^streams\[1\]\.zones\[0\]\.classes\[0\]: unknown class 'person'"
    ):
        plan_analytics(cfg, ("forklift", "pallet"))  # labels other than the config's


def test_events_counts_and_a_reload_that_renames_a_zone():
    stage = AnalyticsStage(COCO80)
    stats = {"other": StreamStats("other"), "cam": StreamStats("cam")}
    first = config(zones=[{"name": "door", "points": SQUARE}, {"name": "yard", "points": SQUARE}])
    stage.configure(first, stats)
    assert stats["other"].analytics is None
    messages, notes = stage.process([frame(0)], [person_at(50, 50)], [np.array([3])], stats)
    assert notes == [] and [t for t, _ in messages] == [b"event/cam/", b"event/cam/"]
    snap = stats["cam"].snapshot()
    assert [(z["zone"], z["occupancy"], z["entered"]) for z in snap["zones"]] == [
        ("door", 1, 1),
        ("yard", 1, 1),
    ]
    # A reload renames yard: door keeps its count (occupancy 0: the stream restarts).
    stage.configure(
        config(zones=[{"name": "door", "points": SQUARE}, {"name": "gate", "points": SQUARE}]),
        stats,
    )
    snap = stats["cam"].snapshot()
    assert [(z["zone"], z["occupancy"], z["entered"]) for z in snap["zones"]] == [
        ("door", 0, 1),
        ("gate", 0, 0),
    ]
    messages, _ = stage.process([frame(1, segment=2)], [person_at(50, 50)], [np.array([4])], stats)
    assert len(messages) == 2 and stats["cam"].snapshot()["zones"][1]["entered"] == 1
    # Zones and lines removed from the stream: no state, no counts.
    stage.configure(config(), stats)
    assert stats["cam"].analytics is None and stage.live_streams() == set()


def test_pixels_beyond_the_frame_turn_the_stream_off_until_the_frame_size_changes():
    stage = AnalyticsStage(COCO80)
    stats = {"other": StreamStats("other"), "cam": StreamStats("cam")}
    stage.configure(config(lines=[{"name": "l", "a": [0, 150], "b": [400, 150]}]), stats)
    messages, notes = stage.process([frame(0)], [person_at(50, 50)], [np.array([1])], stats)
    assert messages == [] and len(notes) == 1
    stream_id, reason = notes[0]
    assert stream_id == "cam" and reason.startswith(
        "analytics off: streams[1].lines[0].b: [400, 150] is outside the stream's 300x200 frame"
    )
    assert stats["cam"].snapshot()["analytics_error"].startswith("streams[1].lines[0].b: ")
    # The file loops at the same size: still off, said once.
    assert stage.process([frame(1, segment=2)], [person_at(50, 50)], [np.array([1])], stats) == (
        [],
        [],
    )
    # The camera comes back at 480x640: the line fits, the stream counts again.
    _, notes = stage.process(
        [frame(2, segment=3, hw=(480, 640))], [person_at(50, 50)], [np.array([1])], stats
    )
    assert notes == [] and "analytics_error" not in stats["cam"].snapshot()
    messages, _ = stage.process(
        [frame(3, segment=3, hw=(480, 640))], [person_at(50, 200)], [np.array([1])], stats
    )
    assert len(messages) == 1 and b'"event":"cross"' in messages[0][1]
