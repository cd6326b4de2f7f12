"""Snapshots and clips of events through the real pipeline: `python -m streams run` (CPU,
ONNX Runtime) on bikes.mp4 with the hand count's zone and line (tests/data/
bikes_hand_count.yaml: real crossings and stays), and a real RTSP camera; what a real ZeroMQ
subscriber receives on ``snapshot/<stream>/`` and ``clip/<stream>/``, and the files: ffprobe
says each clip plays, has the source's codec and profile and the source's very packet bytes
(no re-encoding) and covers its events' times; each snapshot has the event's box drawn in
red where the detector saw the object. The directory's cap removes the oldest files first; a
directory that cannot be written, or a full disk, is one clear error line naming the stream
and the directory, and the pipeline goes on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from streams.bus.messages import validate
from streams.record.snapshot import EVENT_BGR
from tests.helpers import Collector, cleanup, free_port, run_cli, start_cli, write_config
from tests.support.hand_count import analytics_config, load_hand_count
from tests.support.probe import decodes_cleanly, ffprobe, picture_hashes
from tests.support.rtsp import make_test_clip

slow = pytest.mark.slow
WHOLE_FRAME = {"name": "all", "units": "fraction", "points": [[0, 0], [1, 0], [1, 1], [0, 1]]}
FRAMES = 250


def of(messages, kind: str, stream: str | None = None) -> list[dict]:
    return [
        m for _, m in messages if m["type"] == kind and (stream is None or m["stream"] == stream)
    ]


def red_edge_fraction(image: np.ndarray, box: list[float]) -> float:
    """The share of the box outline's pixels (the 2 px line cv2 draws along each edge) that
    are the event colour, JPEG noise allowed for. Edges on the frame's border are left out
    (a 1 px line there loses its colour to JPEG's halved chroma)."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, x2 = np.clip([x1, x2], 0, width - 1)
    y1, y2 = np.clip([y1, y2], 0, height - 1)
    near = np.abs(image.astype(int) - EVENT_BGR).max(axis=2) < 70
    edges = [
        near[max(y1 - 1, 0) : y1 + 2, x1 : x2 + 1].any(axis=0) if y1 > 1 else None,  # top
        near[y2 - 1 : y2 + 2, x1 : x2 + 1].any(axis=0) if y2 < height - 2 else None,
        near[y1 : y2 + 1, max(x1 - 1, 0) : x1 + 2].any(axis=1) if x1 > 1 else None,  # left
        near[y1 : y2 + 1, x2 - 1 : x2 + 2].any(axis=1) if x2 < width - 2 else None,
    ]
    edges = [edge for edge in edges if edge is not None]
    if not edges:
        return 0.0
    hits = np.concatenate(edges)
    return float(hits.mean()) if hits.size else 0.0


@pytest.fixture(scope="module")
def truth():
    return load_hand_count()


@pytest.fixture(scope="module")
def run(assets, truth, tmp_path_factory):
    """One run over the whole clip (pace none: every frame, so the hand count's events),
    recording every event with 2 s before and after."""
    video = assets.videos[truth.clip]
    tmp = tmp_path_factory.mktemp("record")
    port = free_port()
    config = write_config(
        tmp / "c.yaml",
        [{"id": "bikes", "url": str(video), "pace": "none", **analytics_config(truth)}],
        port,
        tracking={"enabled": True},
        record={"enabled": True, "dir": str(tmp / "rec"), "pre_s": 2, "post_s": 2},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    try:
        result = run_cli("run", str(config), "--no-live", timeout=280)
    finally:
        collector.finish()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and " ERROR " not in result.stderr, result.stderr
    for topic, message in collector.messages:
        validate(topic, message)
    return {
        "messages": list(collector.messages),
        "source": ffprobe(video),
        "dir": tmp / "rec",
        "stderr": result.stderr,
    }


@slow
def test_every_event_has_a_snapshot_and_is_in_a_clip(run):
    messages = run["messages"]
    events = of(messages, "event", "bikes")
    assert len(events) >= 10, events  # the hand count: crossings, enters and exits
    key = lambda e: (e["event"], e.get("zone") or e.get("line"), e["track_id"], e["seq"])  # noqa: E731
    snapshots, clips = of(messages, "snapshot", "bikes"), of(messages, "clip", "bikes")
    in_snapshots = sorted(key(e) for s in snapshots for e in s["events"])
    in_clips = sorted(key(e) for c in clips for e in c["events"])
    assert in_snapshots == in_clips == sorted(key(e) for e in events)
    assert len(snapshots) == len({e["seq"] for e in events})  # one per event frame
    assert len(clips) < len(snapshots)  # events inside a waiting clip joined it
    assert all(s["trigger"] == "event" for s in snapshots + clips)
    # The last stats (after the drain) count them; nothing dropped, nothing failed.
    (row,) = of(messages, "stats")[-1]["streams"]
    assert row["record"]["snapshots"] == len(snapshots)
    assert row["record"]["clips"] == len(clips)
    assert (row["record"]["dropped"], row["record"]["errors"]) == (0, 0)


@slow
def test_each_clip_plays_is_the_sources_packets_and_covers_its_events(run):
    source = run["source"]
    for clip in of(run["messages"], "clip", "bikes"):
        path = Path(clip["path"])
        assert path.parent == run["dir"] / "bikes" and path.stat().st_size == clip["bytes"]
        probe = ffprobe(path)
        assert (probe["codec"], probe["profile"]) == (source["codec"], source["profile"])
        assert (probe["width"], probe["height"]) == (640, 272)
        first = source["hashes"].index(probe["hashes"][0])
        assert probe["hashes"] == source["hashes"][first : first + probe["frames"]], path
        assert probe["keyframes"][0], path
        assert decodes_cleanly(path) == "", path
        for event in clip["events"]:
            assert clip["start"] <= event["pts"] <= clip["end"], (clip, event)
        # From pre_s before its first event (back to a keyframe, or the file's start) to
        # post_s after it (or the file's end).
        opening = clip["events"][0]["pts"]
        assert clip["start"] <= max(opening - 2.0, 0.0) + 1e-6, clip
        assert clip["end"] >= min(opening + 2.0, (FRAMES - 1) / 25) - 0.04 - 1e-6, clip
        assert probe["duration_s"] == pytest.approx(clip["end"] - clip["start"] + 0.04, abs=0.1)


@slow
def test_each_snapshot_is_its_frame_with_the_events_boxes_in_red(run):
    dets = {m["seq"]: m for m in of(run["messages"], "det", "bikes")}
    checked = others = 0
    for snapshot in of(run["messages"], "snapshot", "bikes"):
        image = cv2.imread(snapshot["path"])
        assert image is not None and image.shape == (272, 640, 3)
        det = dets[snapshot["seq"]]
        assert snapshot["pts"] == det["pts"]
        highlighted = {e["track_id"] for e in snapshot["events"]}
        # The other objects' boxes are not red (green: the colour tells them apart).
        for d in det["detections"]:
            if d["track_id"] not in highlighted and red_edge_fraction(image, d["box"]) < 0.2:
                others += 1
        for event in snapshot["events"]:
            boxes = [d["box"] for d in det["detections"] if d["track_id"] == event["track_id"]]
            if not boxes:  # an exit on the frame that lost the track: no box to draw
                assert event["event"] == "exit", event
                continue
            assert red_edge_fraction(image, boxes[0]) > 0.8, (snapshot, boxes[0])
            checked += 1
    assert checked >= 5 and others >= 5, (checked, others)


@slow
def test_the_size_cap_removes_the_oldest_files_first(assets, tmp_path):
    """A looping file with a whole-frame zone and a 1 MiB cap (a few clips): the directory
    stays under it, and what is left are the newest files announced."""
    port, metrics_port = free_port(), free_port()
    cap = 1 << 20
    config = write_config(
        tmp_path / "c.yaml",
        [
            {
                "id": "bikes",
                "url": str(assets.videos["bikes.mp4"]),
                "pace": "none",
                "fps": 5,
                "loop": True,
                "zones": [WHOLE_FRAME],
            }
        ],
        port,
        tracking={"enabled": True},
        record={
            "enabled": True,
            "dir": str(tmp_path / "rec"),
            "max_bytes": cap,
            "pre_s": 1,
            "post_s": 1,
        },
        metrics={"port": metrics_port},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")
    try:
        sizes = lambda c: sum(m["bytes"] for m in c.of("clip") + c.of("snapshot"))  # noqa: E731
        # Twice the cap written, and ten stats samples of the ring (a fast machine writes the
        # bytes in fewer seconds than that).
        assert collector.wait_for(lambda c: sizes(c) > 2 * cap and len(c.of("stats")) >= 10, 120), (
            process.output()[-3000:]
        )
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        scraped = {
            (name, labels): float(value)
            for name, labels, value in re.findall(
                r"^(streams_record_\w+)\{([^}]*)\} (\S+)$", text.read().decode(), re.M
            )
        }
        code, _ = process.drain(timeout_s=20)
        assert code == 0, process.output()[-3000:]
    finally:
        cleanup(process, collector)
    announced = sorted(
        of(collector.messages, "clip") + of(collector.messages, "snapshot"),
        key=lambda m: m["time"],
    )
    # /metrics counted what the bus announced by then (at least as many, later).
    written = scraped[("streams_record_files_total", 'kind="clip",stream="bikes"')]
    assert written >= 2 and scraped[("streams_record_buffer_bytes", 'stream="bikes"')] > 0
    assert scraped[("streams_record_lost_total", 'stream="bikes",why="error"')] == 0
    assert len(of(collector.messages, "clip")) >= written
    present = [Path(m["path"]).exists() for m in announced]
    # Over the whole run (the file looped several times) the ring stayed within its bound:
    # pre_s + post_s + 2 s, back to the keyframe before (bikes.mp4's GOPs: up to 2.44 s).
    held = [row["record"] for m in collector.of("stats") for row in m["streams"]]
    assert len(held) >= 10 and max(r["buffer_s"] for r in held) <= 1 + 1 + 2 + 2.44 + 0.04
    assert max(r["buffer_bytes"] for r in held) < 1 << 20
    total = sum(p.stat().st_size for p in (tmp_path / "rec").rglob("*") if p.is_file())
    assert total <= cap
    assert not present[0] and present[-1]
    # Removed oldest first: once a file is still there, every later one is too.
    first_kept = present.index(True)
    assert all(present[first_kept:]), present


def run_failing(assets, tmp_path, directory: Path) -> tuple[list, str]:
    """A stream recording into ``directory``; returns (messages, stderr) after its end."""
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [
            {
                "id": "bikes",
                "url": str(assets.videos["bikes.mp4"]),
                "pace": "none",
                "fps": 5,
                "zones": [WHOLE_FRAME],
            }
        ],
        port,
        tracking={"enabled": True},
        record={"enabled": True, "dir": str(directory), "pre_s": 1, "post_s": 1},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    try:
        result = run_cli("run", str(config), "--no-live", timeout=120)
    finally:
        collector.finish()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    messages = list(collector.messages)
    assert len(of(messages, "det", "bikes")) == 50  # every frame (fps 5 of 10 s): it went on
    assert of(messages, "event", "bikes")
    (row,) = of(messages, "stats")[-1]["streams"]
    assert row["record"]["errors"] > 0 and row["state"] == "ended"
    return messages, result.stderr


@slow
def test_an_unwritable_directory_is_one_error_naming_stream_and_dir_and_the_run_goes_on(
    assets, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    directory = blocker / "rec"
    messages, stderr = run_failing(assets, tmp_path, directory)
    assert not of(messages, "snapshot") and not of(messages, "clip")
    lines = [line for line in stderr.splitlines() if "cannot write" in line]
    assert len(lines) == 1, lines  # once a minute per stream; the rest are counted
    assert f"stream bikes: cannot write its snapshot into {directory}: " in lines[0]
    assert "Not a directory" in lines[0] and "the pipeline goes on" in lines[0]


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs, filled to its last 16 KB (root and mount needed; skips otherwise)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full disk needs root to mount a small tmpfs")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        free = shutil.disk_usage(mount).free
        (mount / "filler.bin").write_bytes(b"\0" * (free - 16 * 1024))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@slow
def test_a_full_disk_is_one_error_naming_stream_and_dir_and_the_run_goes_on(
    assets, tmp_path, full_disk
):
    directory = full_disk / "rec"
    messages, stderr = run_failing(assets, tmp_path, directory)
    lines = [line for line in stderr.splitlines() if "cannot write" in line]
    assert len(lines) == 1, lines
    assert "stream bikes: cannot write its " in lines[0] and f"into {directory}: " in lines[0]
    assert "the disk is full (no space left on device)" in lines[0], lines[0]
    # Nothing half-written is left behind, and nothing was announced that is not there.
    assert not [p for p in directory.rglob("*") if p.is_file() and p.suffix in (".jpg", ".mp4")
                and not any(m["path"] == str(p) for m in of(messages, "snapshot")
                            + of(messages, "clip"))]  # fmt: skip
    for m in of(messages, "snapshot") + of(messages, "clip"):
        assert Path(m["path"]).stat().st_size == m["bytes"]


@slow
@pytest.mark.rtsp
def test_a_camera_gets_snapshots_and_clips_of_its_own_packets(assets, rtsp_server, tmp_path):
    """A real RTSP camera (GStreamer, bikes.mp4 re-encoded as H.264 baseline): the clips are
    its H.264 as sent (codec, profile, size, and pictures that decode bit for bit as the
    served file's: no encoder in the path), they play and cover their events on the camera's
    clock; the snapshots have the boxes drawn."""
    clip = make_test_clip(assets.videos["bikes.mp4"], tmp_path / "street.mp4")
    served, served_pictures = ffprobe(clip), picture_hashes(clip)
    server = rtsp_server(clip, path="cam1")
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [{"id": "cam1", "url": server.url, "fps": 5, "zones": [WHOLE_FRAME]}],
        port,
        capture={"open_timeout_s": 5, "read_timeout_s": 3},
        tracking={"enabled": True},
        record={"enabled": True, "dir": str(tmp_path / "rec"), "pre_s": 2, "post_s": 2},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")
    try:
        assert collector.wait_for(lambda c: len(c.of("clip", "cam1")) >= 2, 90), process.output()[
            -3000:
        ]
        code, _ = process.drain(timeout_s=20)
        assert code == 0, process.output()[-3000:]
    finally:
        cleanup(process, collector)
    for topic, message in collector.messages:
        validate(topic, message)
    clips = of(collector.messages, "clip", "cam1")
    for message in clips:
        path = Path(message["path"])
        probe = ffprobe(path)
        assert (probe["codec"], probe["profile"]) == (served["codec"], served["profile"])
        assert (probe["width"], probe["height"]) == (served["width"], served["height"])
        assert probe["keyframes"][0] and decodes_cleanly(path) == "", path
        # RTP repacketises the camera's H.264 (its packets are not the file's bytes), but the
        # pictures decode bit for bit as the served file's, in order (it loops): no encoder.
        pictures = picture_hashes(path)
        at = served_pictures.index(pictures[0])
        n = len(served_pictures)
        assert pictures == [served_pictures[(at + k) % n] for k in range(len(pictures))], path
        for event in message["events"]:
            assert message["start"] <= event["pts"] <= message["end"], message
        assert probe["duration_s"] == pytest.approx(
            message["end"] - message["start"] + 0.04, abs=0.15
        )
    dets = {m["seq"]: m for m in collector.of("det", "cam1")}
    drawn = 0
    for snapshot in of(collector.messages, "snapshot", "cam1"):
        image = cv2.imread(snapshot["path"])
        for event in snapshot["events"]:
            det = dets.get(snapshot["seq"])
            boxes = [d["box"] for d in det["detections"] if d["track_id"] == event["track_id"]]
            if boxes:
                assert red_edge_fraction(image, boxes[0]) > 0.8, snapshot
                drawn += 1
    assert drawn >= 1
    # The ring stayed within its bound while the camera ran (stats: bytes and seconds held).
    rows = [row for m in collector.of("stats") for row in m["streams"] if "record" in row]
    # pre_s + post_s + 2 s of slack, back to a keyframe (one a second), a frame's leeway.
    assert rows and max(r["record"]["buffer_s"] for r in rows) <= 2 + 2 + 2 + 1.0 + 0.1


@slow
def test_on_demand_through_the_running_pipeline_and_a_reload_that_turns_it_on(assets, tmp_path):
    """In one process, what a control API would call: ``pipeline.recorder.snapshot(stream)``
    and ``.clip(stream, seconds)`` on a live looping file (paths back, files there, announced
    on the bus); a stream without record is refused in words; a reload that turns record on
    for it (that stream restarts) makes it answer too."""
    import threading

    from streams.config import load_config
    from streams.record.recorder import RecordError
    from streams.runtime.wiring import build_runtime

    bikes = {"id": "bikes", "url": str(assets.videos["bikes.mp4"]), "loop": True, "fps": 5}
    plain = {**bikes, "id": "plain"}
    port = free_port()
    record = {"dir": str(tmp_path / "rec"), "pre_s": 1, "post_s": 1}
    path = write_config(
        tmp_path / "c.yaml",
        [{**bikes, "record": {"enabled": True}}, plain],
        port,
        record=record,
    )
    runtime = build_runtime(load_config(path))
    pipeline = runtime.pipeline
    collector = Collector(f"tcp://127.0.0.1:{port}")
    try:
        pipeline.start()
        assert collector.wait_for(lambda c: len(c.of("det", "bikes")) >= 10, 60)
        snapshot = pipeline.recorder.snapshot("bikes")
        clip = pipeline.recorder.clip("bikes", 2.0)
        assert Path(snapshot).is_file() and Path(clip).is_file()
        assert decodes_cleanly(Path(clip)) == ""
        assert 1.0 <= ffprobe(Path(clip))["duration_s"] <= 2.0 + 2.44 + 0.1  # back to a key
        with pytest.raises(RecordError, match="stream plain: not recording"):
            pipeline.recorder.snapshot("plain")
        path = write_config(
            tmp_path / "c.yaml",
            [{**bikes, "record": {"enabled": True}}, {**plain, "record": {"enabled": True}}],
            port,
            record=record,
        )
        plan = pipeline.reload(load_config(path))
        assert plan.changed == ("plain",)
        assert collector.wait_for(lambda c: len(c.of("det", "plain")) >= 20, 60)
        again = pipeline.recorder.snapshot("plain")
        assert Path(again).parent == tmp_path / "rec" / "plain"
        assert collector.wait_for(lambda c: len(c.of("snapshot")) >= 2, 10)
    finally:
        stopper = threading.Thread(target=pipeline.stop)
        stopper.start()
        stopper.join(10)
        collector.close()
        runtime.close()
    announced = {m["path"]: m for m in of(collector.messages, "snapshot")}
    assert {snapshot, again} <= set(announced) and announced[snapshot]["trigger"] == "request"
    assert of(collector.messages, "clip")[0]["path"] == clip


@slow
def test_an_event_near_the_end_of_a_looping_file_still_gets_its_clip(assets, tmp_path):
    """The default config's recording, as a user turns it on: bikes.mp4 looping, a zone over
    the road and a line. An event in the last ``post_s`` of a pass is seen after the capture
    thread has started the next pass (and emptied the ring for it): its clip is cut from what
    the ring kept of the pass, ends at the pass's end (never spans the loop), and no error is
    logged (it used to be "no packets for a clip ... the stream restarted")."""
    port = free_port()
    road = {"name": "road", "units": "fraction", "points": [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}
    middle = {"name": "middle", "units": "fraction", "a": [0.5, 0], "b": [0.5, 1]}
    config = write_config(
        tmp_path / "c.yaml",
        [
            {
                "id": "bikes",
                "url": str(assets.videos["bikes.mp4"]),
                "loop": True,
                "pace": "none",
                "zones": [road],
                "lines": [middle],
            }
        ],
        port,
        tracking={"enabled": True},
        record={"enabled": True, "dir": str(tmp_path / "rec"), "pre_s": 2, "post_s": 2},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")
    try:
        # Into the second pass far enough for every clip of the first to be due.
        assert collector.wait_for(
            lambda c: any(m["seq"] >= FRAMES + 120 for m in c.of("det", "bikes")), 150
        ), process.output()[-3000:]
        code, _ = process.drain(timeout_s=30)
        output = process.output()
        assert code == 0, output[-3000:]
    finally:
        cleanup(process, collector)
    assert "cannot write" not in output and " ERROR " not in output, output[-3000:]
    pass_end_s = (FRAMES - 1) / 25
    first = [e for e in of(collector.messages, "event", "bikes") if e["pts"] <= pass_end_s]
    late = [e for e in first if e["pts"] > pass_end_s - 2]
    assert late, "no event in the last 2 s of the pass: the case is not exercised"
    clips = of(collector.messages, "clip", "bikes")
    key = lambda e: (e["event"], e.get("zone") or e.get("line"), e["track_id"], e["seq"])  # noqa: E731
    in_clips = {key(e): clip for clip in clips for e in clip["events"]}
    assert all(key(e) in in_clips for e in first), (first, clips)
    for event in late:
        clip = in_clips[key(event)]
        assert clip["start"] <= event["pts"] <= clip["end"] <= pass_end_s + 1e-6, clip
        assert ffprobe(Path(clip["path"]))["frames"] >= 25  # a second of the pass at least
    (row,) = of(collector.messages, "stats")[-1]["streams"]
    assert row["record"]["errors"] == 0
