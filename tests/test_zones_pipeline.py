"""Zones and lines through the real pipeline: `python -m streams run` on the sample videos
(CPU, ONNX Runtime), events, stats and /metrics read by a real subscriber and a real scrape."""

from __future__ import annotations

import re
import threading
import urllib.request
from collections import Counter

from streams.bus.messages import validate
from streams.config import load_config
from streams.runtime.wiring import build_runtime
from tests.helpers import Collector, cleanup, free_port, run_cli, start_cli, write_config

# The whole frame, in fractions: every tracked object is inside from its first confirmed box.
WHOLE_FRAME = {"name": "all", "units": "fraction", "points": [[0, 0], [1, 0], [1, 1], [0, 1]]}
# A vertical line down the middle of the frame.
MIDDLE = {"name": "mid", "units": "fraction", "a": [0.5, 0], "b": [0.5, 1]}
# yolov3-tiny scores the man on the phone 0.25-0.66 (tests/test_tracking_pipeline.py).
PHONE_TRACKING = {"enabled": True, "high_score": 0.25, "new_track_score": 0.25}


def events_of(messages: list[tuple[bytes, dict]], stream: str) -> list[dict]:
    return [m for _, m in messages if m["type"] == "event" and m["stream"] == stream]


def first_sightings(dets: list[dict]) -> dict[int, dict]:
    """Track id -> the det message where it first carried that (confirmed) id."""
    first: dict[int, dict] = {}
    for message in dets:
        for d in message["detections"]:
            if d["track_id"] >= 1:
                first.setdefault(d["track_id"], message)
    return first


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """The zone and line series of /metrics: (name, sorted labels) -> value."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    series = {}
    for name, labels, value in re.findall(
        r"^(streams_(?:zone|line)_\w+)\{([^}]*)\} (\S+)$", text, re.M
    ):
        pairs = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', labels)))
        series[(name, pairs)] = float(value)
    return series


def test_zone_and_line_events_counts_and_metrics_and_a_loop_starts_them_afresh(assets, tmp_path):
    port, metrics_port = free_port(), free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [
            {
                "id": "bikes",
                "url": str(assets.videos["bikes.mp4"]),
                "pace": "none",
                "fps": 10,  # 100 frames a pass
                "loop": True,
                "zones": [
                    {**WHOLE_FRAME, "dwell_alert_s": 0.5},
                    {**WHOLE_FRAME, "name": "people", "classes": ["person"]},
                ],
                "lines": [MIDDLE],
            },
        ],
        port,
        tracking={"enabled": True},
        metrics={"port": metrics_port},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")

    def reset_at(c) -> int | None:
        """Index in c.messages of the first tracks-reset note (the file looped)."""
        return next(
            (
                i
                for i, (_, m) in enumerate(list(c.messages))
                if m["type"] == "status" and m.get("reason", "").startswith("tracks reset")
            ),
            None,
        )

    try:
        # The second pass's first objects enter again (and the first pass was all seen).
        assert collector.wait_for(
            lambda c: (
                (at := reset_at(c)) is not None
                and any(m["event"] == "enter" for m in events_of(c.messages[at:], "bikes"))
            ),
            150,
        ), process.output()[-3000:]
        before_scrape = Counter(
            (m["event"], m.get("direction") or m.get("zone"))
            for m in events_of(collector.messages, "bikes")
        )
        metrics = scrape(metrics_port)
        code, _ = process.drain(timeout_s=15)
        assert code == 0, process.output()[-3000:]
    finally:
        cleanup(process, collector)
    for topic, message in collector.messages:
        validate(topic, message)
    at = reset_at(collector)
    first_pass, later = collector.messages[:at], collector.messages[at:]
    note = collector.messages[at][1]
    assert note["state"] == "live" and note["reason"] == "tracks reset: the file started again"

    # Every track the first pass confirmed entered the whole-frame zone, on the very frame it
    # was first published with its id, once; the events name its class as the det did.
    dets = [m for _, m in first_pass if m["type"] == "det"]
    events = events_of(first_pass, "bikes")
    enters = [m for m in events if m["event"] == "enter" and m["zone"] == "all"]
    first = first_sightings(dets)
    assert len(first) >= 5, first.keys()
    assert sorted(m["track_id"] for m in enters) == sorted(first), (enters, first.keys())
    for m in enters:
        seen = first[m["track_id"]]
        assert (m["zone"], m["seq"], m["pts"]) == ("all", seen["seq"], seen["pts"])
        assert m["capture_time"] == seen["capture_time"]
        (box,) = [d for d in seen["detections"] if d["track_id"] == m["track_id"]]
        assert (m["class"], m["class_id"]) == (box["label"], box["class_id"])
    # The zone for people only: the same, for the tracks of persons (and some are not).
    people = sorted(
        m["track_id"] for m in events if m.get("zone") == "people" and m["event"] == "enter"
    )
    persons = sorted(
        i for i, seen in first.items()
        for d in seen["detections"] if d["track_id"] == i and d["label"] == "person"
    )  # fmt: skip
    assert people == persons and 0 < len(people) < len(first), (people, first.keys())
    kinds = Counter(m["event"] for m in events)
    assert kinds["exit"] >= 1 and kinds["cross"] >= 1 and kinds["dwell"] >= 1, kinds
    assert all(m["dwell_s"] > 0.5 for m in events if m["event"] == "dwell")
    assert all(m["dwell_s"] >= 0 for m in events if m["event"] == "exit")
    # Each stream's events in frame order.
    order = [(m["pts"], m["seq"]) for m in events_of(collector.messages, "bikes")]
    assert order == sorted(order)

    # After the loop: the objects enter again, as new tracks (ids carry on counting).
    again = [m for m in events_of(later, "bikes") if m["event"] == "enter"]
    assert again and min(m["track_id"] for m in again) > max(first)

    # The final stats (published after the drain, after every event) count what arrived.
    final = [m for _, m in collector.messages if m["type"] == "stats"][-1]
    (row,) = final["streams"]
    (zone, people_zone), (line,) = row["zones"], row["lines"]
    every_event = events_of(collector.messages, "bikes")
    assert people_zone["entered"] == sum(
        m["event"] == "enter" and m.get("zone") == "people" for m in every_event
    )
    assert {c["class"] for c in people_zone["by_class"]} == {"person"}
    every = [m for m in every_event if m.get("zone") != "people"]
    counted = Counter(m["event"] for m in every)
    assert (zone["entered"], zone["exited"], zone["dwell_alerts"]) == (
        counted["enter"],
        counted["exit"],
        counted["dwell"],
    )
    since_reset = Counter(m["event"] for m in events_of(later, "bikes") if m.get("zone") == "all")
    assert zone["occupancy"] == since_reset["enter"] - since_reset["exit"]  # 0 at the loop
    crossed = Counter(m["direction"] for m in every if m["event"] == "cross")
    assert (line["in"], line["out"]) == (crossed["in"], crossed["out"])
    by_class = {c["class"]: c["entered"] for c in zone["by_class"]}
    assert by_class == dict(Counter(m["class"] for m in every if m["event"] == "enter"))
    assert "analytics_error" not in row

    # /metrics, scraped while it ran: at least what had arrived before, at most the final count.
    enter_series = {
        dict(labels)["class"]: value
        for (name, labels), value in metrics.items()
        if name == "streams_zone_events_total"
        and dict(labels)["event"] == "enter"
        and dict(labels)["zone"] == "all"
    }
    assert all(dict(labels)["stream"] == "bikes" for (_, labels) in metrics)
    assert before_scrape[("enter", "all")] <= sum(enter_series.values()) <= zone["entered"]
    for label, value in enter_series.items():
        assert value <= by_class[label]
    crossings = sum(v for (n, _), v in metrics.items() if n == "streams_line_crossings_total")
    assert before_scrape[("cross", "in")] + before_scrape[("cross", "out")] <= crossings
    assert crossings <= line["in"] + line["out"]
    occupancy = sorted(dict(k[1])["zone"] for k in metrics if k[0] == "streams_zone_occupancy")
    assert occupancy == ["all", "people"]


def test_a_zone_outside_the_frame_turns_off_that_streams_analytics_only(assets, tmp_path):
    """Pixels beyond the frame are only known to be once the stream is live (176x144)."""
    port = free_port()
    carphone = str(assets.videos["carphone_pristine.mp4"])
    zone = {"name": "cab", "points": [[0, 0], [176, 0], [176, 144], [0, 144]]}
    wide = {**zone, "points": [[0, 0], [900, 0], [900, 144], [0, 144]]}
    config = write_config(
        tmp_path / "c.yaml",
        [
            {"id": "wide", "url": carphone, "pace": "none", "fps": 10, "zones": [wide]},
            {"id": "fits", "url": carphone, "pace": "none", "fps": 10, "zones": [zone]},
        ],
        port,
        tracking=PHONE_TRACKING,
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    # `streams subscribe` on one stream's events and status, as a person would run it.
    subscribe = start_cli(
        "subscribe", f"tcp://127.0.0.1:{port}", "--stream", "fits", "--kinds", "event,status",
        "--timeout", "8",
    )  # fmt: skip
    try:
        result = run_cli("run", str(config), "--no-live", timeout=240)
        subscribe.wait(30)
    finally:
        collector.finish()
        cleanup(subscribe)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = subscribe.output().splitlines()
    assert lines and all(line.startswith(("event fits ", "status fits:")) for line in lines), lines
    assert re.search(
        r"^event fits #\d+ pts \d+\.\d\ds: person \d+ enter zone cab$", "\n".join(lines), re.M
    )
    for topic, message in collector.messages:
        validate(topic, message)
    problem = (
        "streams[0].zones[0].points[1]: [900, 0] is outside the stream's 176x144 frame "
        "(pixels: x 0..176, y 0..144; or give fractions with units: fraction)"
    )
    logged = [line for line in result.stderr.splitlines() if "analytics off" in line]
    assert len(logged) == 1 and "ERROR" in logged[0] and problem in logged[0], logged
    notes = [m for m in collector.of("status", "wide") if "reason" in m]
    assert [m["state"] for m in notes] == ["live"], notes
    assert notes[0]["reason"].startswith(f"analytics off: {problem}; ")
    assert (notes[0]["width"], notes[0]["height"]) == (176, 144)

    # Its detections and tracks go on; it sends no event. The other stream counts the man.
    assert len(collector.of("det", "wide")) == 40
    assert any(d["track_id"] >= 1 for m in collector.of("det", "wide") for d in m["detections"])
    assert not collector.of("event", "wide")
    fits = collector.of("event", "fits")
    assert fits and fits[0]["event"] == "enter" and fits[0]["class"] == "person", fits
    assert not [m for m in collector.of("status", "fits") if "reason" in m]
    rows = {r["stream"]: r for r in collector.of("stats")[-1]["streams"]}
    assert rows["wide"]["analytics_error"] == problem
    assert rows["wide"]["zones"][0]["entered"] == 0
    assert "analytics_error" not in rows["fits"] and rows["fits"]["zones"][0]["entered"] >= 1


def test_a_bad_zone_is_a_config_error_naming_its_key(tmp_path):
    config = write_config(
        tmp_path / "c.yaml",
        [
            {
                "id": "a",
                "url": "sample:bikes.mp4",
                "tracking": {"enabled": True},
                "zones": [{"name": "bow", "points": [[0, 0], [10, 10], [10, 0], [0, 10]]}],
            }
        ],
        free_port(),
    )
    result = run_cli("run", str(config), "--no-live", timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "config error: streams[0].zones[0].points: self-intersecting (edge 0 crosses edge 2); "
        "list the points in order around the area"
    ]


def test_a_reload_that_removes_a_stream_drops_its_tracks_and_zone_state(assets, tmp_path):
    """In one process: the removed stream's tracker rows and analytics state go (they would
    stay for good otherwise); the kept stream goes on counting."""
    carphone = str(assets.videos["carphone_pristine.mp4"])
    keep = {"id": "keep", "url": carphone, "fps": 5, "loop": True, "zones": [WHOLE_FRAME]}
    gone = {**keep, "id": "gone"}
    port = free_port()
    path = write_config(tmp_path / "c.yaml", [keep, gone], port, tracking=PHONE_TRACKING)
    runtime = build_runtime(load_config(path))
    pipeline = runtime.pipeline
    collector = Collector(f"tcp://127.0.0.1:{port}")

    def tracks(stream_id: str) -> int:
        return sum(t.track_count(stream_id) for t in list(pipeline._trackers.values()))

    try:
        pipeline.start()
        # Both streams' objects entered their zones: state held for each.
        assert collector.wait_for(lambda c: c.of("event", "keep") and c.of("event", "gone"), 60), (
            collector.of("status")
        )
        assert tracks("gone") > 0 and pipeline._analytics.live_streams() == {"keep", "gone"}
        path = write_config(tmp_path / "c.yaml", [keep], port, tracking=PHONE_TRACKING)
        plan = pipeline.reload(load_config(path))
        assert plan.removed == ("gone",)
        reloaded_at = len(collector.messages)
        assert collector.wait_for(  # batches of the new config have gone through
            lambda c: len([m for _, m in c.messages[reloaded_at:] if m["type"] == "det"]) >= 5,
            30,
        )
        assert tracks("gone") == 0 and tracks("keep") > 0
        assert pipeline._analytics.live_streams() == {"keep"}
        assert [s["stream"] for s in pipeline.snapshot()["streams"]] == ["keep"]
    finally:
        stopper = threading.Thread(target=pipeline.stop)
        stopper.start()
        stopper.join(10)
        collector.close()
        runtime.close()
