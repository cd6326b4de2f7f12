"""The hand count of bikes.mp4 (tests/data/bikes_hand_count.yaml; how it was made and the table
of what a person saw: tests/test_hand_count.py) held against the real pipeline: `python -m
streams run` (CPU, ONNX Runtime) with the count's zone and line in the config, the events a
real ZeroMQ subscriber receives on ``event/<stream>/``, the ``det`` messages' track ids and the
``stats`` counts. And over a real RTSP camera that drops and comes back: the zone's state
starts afresh with the tracks, and says so.

Same detector, thresholds and tracker parameters as the processors-level test (the config's
defaults, ``tracking: {enabled: true}``). One difference: the pipeline forgets a track lost
inside a zone after the stream's ``tracking.max_lost_s`` (1 s), the processors-level test
after 2 s; the exit's frame as the hand count reads it (enter + dwell) is the same.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from streams.bus.messages import validate
from streams.config import TrackingConfig
from tests.helpers import Collector, cleanup, free_port, run_cli, start_cli, write_config
from tests.support.hand_count import (
    analytics_config,
    events_from_messages,
    load_hand_count,
    match_events,
    observed_from,
    span_track_ids,
)
from tests.support.rtsp import make_test_clip

# Two streams of 250 frames through the detector on the CPU (~45 s on 2 cores, once).
slow = pytest.mark.slow

STREAMS = ("pixels", "fraction")  # the same zone and line, in each of the config's units
FRAMES = 250  # bikes.mp4: 25 fps, 10 s


@pytest.fixture(scope="module")
def truth():
    return load_hand_count()


@pytest.fixture(scope="module")
def received(assets, truth, tmp_path_factory) -> dict[str, dict[str, list[dict]]]:
    """Stream -> message type -> the messages a subscriber received, in order; after the
    process exited on its own at the end of both files."""
    video = str(assets.videos[truth.clip])
    port = free_port()
    config = write_config(
        tmp_path_factory.mktemp("hand_count") / "c.yaml",
        [
            # pace none: as fast as it goes, and no frame dropped (every one is checked).
            {"id": "pixels", "url": video, "pace": "none", **analytics_config(truth)},
            {
                "id": "fraction",
                "url": video,
                "pace": "none",
                **analytics_config(truth, fractions=True),
            },
        ],
        port,
        tracking={"enabled": True},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    began = time.monotonic()
    try:
        result = run_cli("run", str(config), "--no-live", timeout=280)
    finally:
        collector.finish()
    print(f"streams run, 2 x {FRAMES} frames: {time.monotonic() - began:.1f} s")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for topic, message in collector.messages:
        validate(topic, message)
    out: dict[str, dict[str, list[dict]]] = {s: {} for s in STREAMS}
    stats = []
    for _, message in collector.messages:
        if message["type"] == "stats":
            stats.append(message)
        elif message.get("stream") in out:
            out[message["stream"]].setdefault(message["type"], []).append(message)
    for stream in STREAMS:
        out[stream]["stats"] = [
            row for m in stats for row in m["streams"] if row["stream"] == stream
        ]
    return out


@slow
@pytest.mark.parametrize("stream", STREAMS)
def test_every_frame_is_published_once_in_order(received, stream):
    dets = received[stream]["det"]
    assert [m["seq"] for m in dets] == list(range(FRAMES))
    assert [m["pts"] for m in dets] == pytest.approx([i / 25 for i in range(FRAMES)], abs=1e-3)
    assert all(isinstance(d.get("track_id"), int) for m in dets for d in m["detections"])


@slow
@pytest.mark.parametrize("stream", STREAMS)
def test_the_events_received_match_the_hand_count(received, truth, stream):
    messages = received[stream].get("event", [])
    observed = observed_from(events_from_messages(messages), truth.fps)
    report = match_events(observed, truth.expected)
    assert report.ok, report.describe() + "\nall events:\n" + "\n".join(map(str, observed))
    # Both people ride and walk left to right over the line as one track each: enter, cross,
    # exit, the same id (the processors-level test holds the rest of the table).
    matched = {truth.expected[j].object_id: [] for j in report.matched.values()}
    for i, j in sorted(report.matched.items()):
        matched[truth.expected[j].object_id].append(messages[i])
    for person in ("rider", "walker"):
        got = matched[person]
        assert [m["event"] for m in got] == ["enter", "cross", "exit"], got
        assert len({m["track_id"] for m in got}) == 1 and got[1]["direction"] == "in", got
    kinds = Counter(m["event"] for m in messages)
    assert kinds["enter"] == kinds["exit"] >= 4, kinds  # every stay ends before the clip does


@slow
@pytest.mark.parametrize("stream", STREAMS)
def test_events_come_in_time_order_on_frames_that_saw_them(received, stream):
    """In pts order, and seq order with it; an enter or a crossing on the very frame (seq,
    pts, capture time) whose det message carries that track, with the det's class."""
    events, dets = received[stream]["event"], received[stream]["det"]
    order = [(m["pts"], m["seq"]) for m in events]
    assert len(order) >= 10 and order == sorted(order), order
    by_seq = {m["seq"]: m for m in dets}
    for m in events:
        det = by_seq[m["seq"]]
        assert (m["pts"], m["capture_time"]) == (det["pts"], det["capture_time"]), m
        if m["event"] in ("enter", "cross"):
            (box,) = [d for d in det["detections"] if d["track_id"] == m["track_id"]]
            assert (m["class"], m["class_id"]) == (box["label"], box["class_id"]), m


@slow
def test_pixels_and_fractions_give_the_same_events(received):
    """Fractions are scaled to the frame (640x272) when the stream goes live: the same zone
    and line, so the same events, track ids, frames and dwell times."""
    pixels, fraction = (received[s].get("event", []) for s in STREAMS)
    assert pixels, "no event at all"

    # All but the stream's name and its frames' wall-clock capture times.
    def same(m: dict) -> dict:
        return {k: v for k, v in m.items() if k not in ("stream", "capture_time")}

    assert [same(m) for m in pixels] == [same(m) for m in fraction]


@slow
@pytest.mark.parametrize("stream", STREAMS)
def test_the_stats_count_the_events_received(received, truth, stream):
    """The last stats (published after the drain, after every event) add up to the events."""
    events = received[stream]["event"]
    row = received[stream]["stats"][-1]
    (zone,), (line,) = row["zones"], row["lines"]
    assert (zone["zone"], line["line"]) == (truth.zone["name"], truth.line["name"])
    assert "analytics_error" not in row
    kinds = Counter(m["event"] for m in events)
    assert (zone["entered"], zone["exited"], zone["dwell_alerts"]) == (
        kinds["enter"],
        kinds["exit"],
        kinds["dwell"],
    )
    assert zone["occupancy"] == kinds["enter"] - kinds["exit"] == 0
    entered = Counter(m["class"] for m in events if m["event"] == "enter")
    assert {c["class"]: c["entered"] for c in zone["by_class"]} == dict(entered)
    crossed = Counter(m["direction"] for m in events if m["event"] == "cross")
    assert (line["in"], line["out"]) == (crossed["in"], crossed["out"])
    assert line["in"] >= 2  # the rider and the walker, at least


@slow
@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("object_id, n_frames", [("rider", 15), ("cyclist", 33)])
def test_a_person_in_view_keeps_one_track_id_in_the_det_messages(
    received, truth, stream, object_id, n_frames
):
    """As at the processors level: the rider on frames 31-45, the cyclist after the van
    (104-136), one confirmed track id on every frame, read off the det messages."""
    (span,) = [s for s in truth.spans if s.object_id == object_id]
    assert span.frames[1] - span.frames[0] + 1 == n_frames
    frames = {
        m["seq"]: (
            [d["box"] for d in m["detections"]],
            [d["label"] for d in m["detections"]],
            [d["track_id"] for d in m["detections"]],
        )
        for m in received[stream]["det"]
    }
    ids = span_track_ids(span, frames)
    assert None not in ids, ids  # found on every frame
    assert len(set(ids)) == 1 and ids[0] >= 1, ids


# The whole frame: every confirmed track is inside from its first confirmed box.
MAX_LOST_S = TrackingConfig().max_lost_s  # the default: a track lost inside exits after it
WHOLE_FRAME = {"name": "all", "units": "fraction", "points": [[0, 0], [1, 0], [1, 1], [0, 1]]}


@slow
@pytest.mark.rtsp
def test_a_reconnect_starts_the_zone_afresh_and_says_so(assets, rtsp_server, tmp_path):
    """A real RTSP camera (GStreamer, bikes.mp4 re-encoded) killed while tracks are inside a
    whole-frame zone, then restarted: a `tracks reset: a new session` note; after it, the
    objects enter again as new tracks; the tracks inside at the drop never exit (the reset
    invents no exit), and the zone's occupancy counts only what entered since."""
    clip = make_test_clip(assets.videos["bikes.mp4"], tmp_path / "street.mp4")
    server = rtsp_server(clip, path="cam1")
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [{"id": "cam1", "url": server.url, "fps": 5, "zones": [WHOLE_FRAME]}],
        port,
        capture={"open_timeout_s": 3, "read_timeout_s": 2, "reconnect_initial_s": 0.2},
        tracking={"enabled": True},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")

    def note_at(c) -> int | None:
        """Index in c.messages of the first tracks-reset note."""
        return next(
            (
                i
                for i, (_, m) in enumerate(list(c.messages))
                if m["type"] == "status" and m.get("reason", "").startswith("tracks reset")
            ),
            None,
        )

    def inside(messages) -> set[int]:
        """Tracks that entered and have not exited, by the events in ``messages``."""
        held: set[int] = set()
        for _, m in messages:
            if m["type"] == "event" and m["event"] == "enter":
                held.add(m["track_id"])
            elif m["type"] == "event" and m["event"] == "exit":
                held.discard(m["track_id"])
        return held

    try:
        # Live, and something inside the zone when the camera drops.
        assert collector.wait_for(
            lambda c: len(c.of("det", "cam1")) >= 10 and inside(list(c.messages)), 60
        ), process.output()[-3000:]
        server.kill()
        server.restart()

        def entered_again_and_past_forgetting(c) -> bool:
            """Enters after the note, and frames past the time when state kept over the
            reset would have forgotten the tracks held at the drop (their exits, invented)."""
            at = note_at(c)
            if at is None:
                return False
            messages = list(c.messages)
            last_pts = max(m["pts"] for _, m in messages[:at] if m["type"] == "det")
            later = [m for _, m in messages[at:] if m["type"] in ("det", "event")]
            return any(m["type"] == "event" and m["event"] == "enter" for m in later) and any(
                m["type"] == "det" and m["pts"] > last_pts + MAX_LOST_S + 0.5 for m in later
            )

        assert collector.wait_for(entered_again_and_past_forgetting, 40), (
            collector.of("status", "cam1"),
            [m["pts"] for m in collector.of("det", "cam1")],
        )
        code, _ = process.drain(timeout_s=15)
        assert code == 0, process.output()[-3000:]
    finally:
        cleanup(process, collector)
    for topic, message in collector.messages:
        validate(topic, message)
    at = note_at(collector)
    before, after = collector.messages[:at], collector.messages[at + 1 :]
    notes = [m for _, m in collector.messages if m.get("reason", "").startswith("tracks")]
    assert len(notes) == 1, notes
    assert notes[0]["state"] == "live" and notes[0]["reason"] == "tracks reset: a new session"
    states = [m["state"] for _, m in before if m["type"] == "status"]
    assert "reconnecting" in states, states  # the drop, said before the reset

    def events(messages, kind: str) -> list[dict]:
        return [m for _, m in messages if m["type"] == "event" and m["event"] == kind]

    held = inside(before)  # inside when the stream reset
    assert held, "nothing was inside the zone at the drop"
    seen_before = {
        d["track_id"] for _, m in before if m["type"] == "det" for d in m["detections"]
    }  # fmt: skip
    # After the note: enters again, of new tracks only (ids carry on counting); every exit
    # is of a track that entered after the note; the tracks held at the drop never exit.
    again = events(after, "enter")
    assert again and min(m["track_id"] for m in again) > max(seen_before), (again, seen_before)
    assert {m["track_id"] for m in events(after, "exit")} <= {m["track_id"] for m in again}
    assert not [m for m in events(collector.messages, "exit") if m["track_id"] in held], held
    # Events in time order within each session (pts may start again with the new session).
    for part in (before, after):
        order = [(m["pts"], m["seq"]) for _, m in part if m["type"] == "event"]
        assert order == sorted(order), order

    # The last stats (after the drain): every enter and exit counted; occupancy only since
    # the reset (the tracks held at the drop no longer count).
    (row,) = [m for _, m in collector.messages if m["type"] == "stats"][-1]["streams"]
    (zone,) = row["zones"]
    every = Counter(m["event"] for _, m in collector.messages if m["type"] == "event")
    assert (zone["entered"], zone["exited"]) == (every["enter"], every["exit"])
    assert zone["occupancy"] == len(again) - len(events(after, "exit")), zone
