"""The recorder on real frames and packets of bikes.mp4 (OpenCV decodes, PyAV demuxes the
same file into the ring, as a recording file stream does): a snapshot has the event's box
drawn in red at its place, a clip is the source's packets remuxed (ffprobe: same codec and
profile, the same packet bytes, it plays) and covers the event, events inside a waiting clip
join it, the directory's cap removes the oldest files first, an unwritable directory is one
error line naming the stream and the directory while the recorder goes on, a full queue
drops and counts, and snapshot()/clip() answer on demand."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from processors.detections import Detections
from streams.bus.messages import event_message, topic, validate
from streams.capture.frames import Frame
from streams.capture.source import SourceOptions, make_source
from streams.cli.subscribe import describe
from streams.config import parse_config
from streams.record.recorder import Recorder, RecordError
from streams.record.snapshot import EVENT_BGR, OTHER_BGR
from streams.record.store import Store
from tests.support.probe import decodes_cleanly, ffprobe

BOX = np.array([[100.0, 60.0, 260.0, 200.0], [400.0, 20.0, 600.0, 250.0]], np.float32)
TRACKS = np.array([7, 8])
LABELS = ("person", "bicycle")


def make_config(directory: Path, **record):
    return parse_config(
        {
            "streams": [
                {
                    "id": "bikes",
                    "url": "rtsp://camera.invalid/1",  # not opened: frames come from here
                    "lines": [{"name": "x480", "a": [480, 272], "b": [480, 0]}],
                }
            ],
            "tracking": {"enabled": True},
            "record": {"enabled": True, "dir": str(directory), **record},
        }
    )


class Bus:
    """What the recorder publishes, checked against the schema as a subscriber would."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    def __call__(self, topic_name: str, message: dict) -> bool:
        validate(topic_name.encode(), message)
        self.messages.append(message)
        return True

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind]


def cross(frame: Frame, track_id: int = 7) -> dict:
    return event_message(
        stream_id=frame.stream_id,
        event="cross",
        name="x480",
        track_id=track_id,
        label="person",
        class_id=0,
        pts_s=frame.pts_s,
        capture_wall_s=frame.capture_wall_s,
        seq=frame.seq,
        direction="in",
    )


def play(
    recorder: Recorder,
    video: str,
    events_at: set[int],
    frames: int = 250,
    on_gpu: bool = False,
    lag: int = 0,
) -> list[Frame]:
    """Decode ``video`` into the recorder as the pipeline would: packets into the stream's
    ring, each frame with two boxes seen, a cross event on the frames ``events_at``.
    ``on_gpu``: the frames reach the recorder without pixels, as NVDEC's do (the test keeps
    them in ``Frame.surface`` to compare). ``lag``: each frame is seen only once the source
    has been read ``lag`` frames further (a pipeline that far behind its camera)."""
    ring = recorder.ring_for("bikes")
    source = make_source(video, "file", "opencv", SourceOptions("bikes", packets=ring))
    source.open()
    ring.restart(offset_s=0.0)
    detections = Detections(BOX, np.array([0.9, 0.8], np.float32), np.array([0, 1], np.int32))
    out = []
    try:
        for seq in range(frames):
            picture = source.read()
            if picture is None or not picture.load():
                break
            frame = Frame("bikes", seq, picture.pts_s, time.time(), time.monotonic(), 0.0,
                          picture.image_bgr)  # fmt: skip
            out.append(frame)
            if seq >= lag:
                see(recorder, out[seq - lag], detections, events_at, on_gpu)
        for frame in out[max(0, len(out) - lag) :]:  # the pipeline catches up at the end
            see(recorder, frame, detections, events_at, on_gpu)
    finally:
        source.close()
    return out


def see(recorder: Recorder, frame: Frame, detections, events_at: set[int], on_gpu: bool):
    events = [(0, [cross(frame)])] if frame.seq in events_at else []
    if on_gpu:
        frame = Frame(**{**frame.__dict__, "image_bgr": None})
    recorder.seen([frame], [detections], [TRACKS], events)


@pytest.fixture(scope="module")
def video(assets) -> str:
    return str(assets.videos["bikes.mp4"])


@pytest.fixture(scope="module")
def source_probe(video) -> dict:
    return ffprobe(Path(video))


def box_edge_bgr(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The mean colour along the box's top and left edges (2 px lines), inside the frame."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    top = image[y1 : y1 + 2, x1 + 3 : x2 - 3].reshape(-1, 3)
    left = image[y1 + 20 : y2 - 3, x1 : x1 + 2].reshape(-1, 3)  # below the label
    return np.concatenate([top, left]).mean(axis=0)


def test_an_event_gets_a_snapshot_with_its_box_and_a_clip_of_the_sources_packets(
    video, source_probe, tmp_path
):
    bus = Bus()
    recorder = Recorder(make_config(tmp_path, pre_s=2, post_s=2), bus, LABELS)
    recorder.start()
    try:
        frames = play(recorder, video, events_at={125})
    finally:
        recorder.close()
    event_pts = frames[125].pts_s  # 5.0 s
    (snap,) = bus.of("snapshot")
    (clip,) = bus.of("clip")
    assert snap["trigger"] == clip["trigger"] == "event"
    assert (
        snap["events"]
        == clip["events"]
        == [
            {
                "event": "cross",
                "line": "x480",
                "track_id": 7,
                "pts": round(event_pts, 4),
                "seq": 125,
            }
        ]
    )
    assert (snap["seq"], snap["pts"]) == (125, round(event_pts, 4))
    assert describe(snap) == f"snapshot bikes pts 5.00s (cross x480 #7): {snap['path']}"
    assert describe(clip).startswith("clip bikes 1.20-") and describe(clip).endswith(".mp4")
    # The snapshot: that frame, the event's object boxed in red, the other in green.
    image = cv2.imread(snap["path"])
    assert image.shape == frames[125].image_bgr.shape
    assert np.abs(box_edge_bgr(image, BOX[0]) - EVENT_BGR).max() < 40
    assert np.abs(box_edge_bgr(image, BOX[1]) - OTHER_BGR).max() < 40
    inside = (slice(100, 160), slice(140, 220))  # the picture itself inside the box
    assert np.abs(image[inside].astype(int) - frames[125].image_bgr[inside]).mean() < 8
    assert os.path.getsize(snap["path"]) == snap["bytes"]
    # The clip: the source's codec and profile, its very packet bytes, plays, covers the event.
    probe = ffprobe(Path(clip["path"]))
    assert (probe["codec"], probe["profile"]) == (source_probe["codec"], source_probe["profile"])
    assert (probe["width"], probe["height"]) == (640, 272)
    hashes = source_probe["hashes"]
    first = hashes.index(probe["hashes"][0])
    assert probe["hashes"] == hashes[first : first + probe["frames"]]  # no re-encoding
    assert probe["keyframes"][0]
    assert decodes_cleanly(Path(clip["path"])) == ""
    assert clip["start"] <= event_pts - 2.0 + 1e-6 and clip["end"] >= event_pts + 2.0 - 1e-6
    assert probe["duration_s"] == pytest.approx(clip["end"] - clip["start"] + 0.04, abs=0.1)
    assert 4.0 <= probe["duration_s"] <= 4.0 + 2.0  # pre + post, and back to a keyframe
    counts = recorder.counts["bikes"].snapshot()
    assert (counts["snapshots"], counts["clips"], counts["errors"], counts["dropped"]) == (
        1,
        1,
        0,
        0,
    )
    assert Path(snap["path"]).parent == tmp_path / "bikes"


def test_a_pipeline_seconds_behind_its_camera_still_gets_the_pre_roll(video, tmp_path):
    """Packets reach the ring in real time, a frame's events come out of the pipeline later:
    here 7 s later, more than the ring's time bound (pre 2 + post 2 + slack 2 s). Its packets
    stay until the pipeline has finished the frames, so the clip still starts 2 s before."""
    bus = Bus()
    recorder = Recorder(make_config(tmp_path, pre_s=2, post_s=2), bus, LABELS)
    recorder.start()
    try:
        frames = play(recorder, video, events_at={56, 150}, lag=175)  # 2.24 s, 6.0 s
    finally:
        recorder.close()
    clips = bus.of("clip")
    assert [[e["seq"] for e in c["events"]] for c in clips] == [[56], [150]]
    for clip, seq in zip(clips, (56, 150)):
        event_s = frames[seq].pts_s
        assert clip["start"] <= event_s - 2.0 + 1e-6 and clip["end"] >= event_s + 2.0 - 1e-6
        assert decodes_cleanly(Path(clip["path"])) == ""


def test_events_inside_a_waiting_clip_join_it(video, tmp_path):
    bus = Bus()
    recorder = Recorder(make_config(tmp_path, pre_s=1, post_s=2), bus, LABELS)
    # Started once every job is queued: how far the file is read before the writer gets to
    # a job is up to the machine's load (the ring holds the packets of clips queued).
    play(recorder, video, events_at={100, 120, 200})  # 4.0 s, 4.8 s, 8.0 s
    recorder.start()
    recorder.close()
    clips = bus.of("clip")
    assert [[e["seq"] for e in c["events"]] for c in clips] == [[100, 120], [200]]
    assert len(bus.of("snapshot")) == 3  # one per event frame
    assert clips[0]["start"] <= 3.0 and clips[0]["end"] >= 6.0


def test_on_demand_snapshot_and_clip(video, tmp_path):
    bus = Bus()
    recorder = Recorder(make_config(tmp_path, pre_s=3, post_s=1), bus, LABELS)
    recorder.start()
    try:
        with pytest.raises(RecordError, match="no frame processed yet"):
            recorder.snapshot("bikes", timeout_s=2)
        frames = play(recorder, video, events_at=set(), frames=200)
        snap_path = recorder.snapshot("bikes")
        clip_path = recorder.clip("bikes", 3.0)
        with pytest.raises(RecordError, match="not recording.*recording: bikes"):
            recorder.clip("other", 3.0)
    finally:
        recorder.close()
    (snap,), (clip,) = bus.of("snapshot"), bus.of("clip")
    assert (snap["path"], clip["path"]) == (snap_path, clip_path)
    assert snap["trigger"] == clip["trigger"] == "request" and snap["events"] == []
    assert snap["seq"] == frames[-1].seq  # the latest frame
    assert clip["end"] >= frames[-1].pts_s - 0.04 and clip["start"] <= frames[-1].pts_s - 3.0
    assert decodes_cleanly(Path(clip_path)) == ""


def test_the_size_cap_removes_the_oldest_files_first(tmp_path):
    store = Store(tmp_path, 10_000)
    older = tmp_path / "cam" / "old.mp4"
    older.parent.mkdir()
    older.write_bytes(b"x" * 4000)
    os.utime(older, (time.time() - 100, time.time() - 100))  # from an earlier run
    other = tmp_path / "cam" / "notes.txt"  # not ours: never removed, never counted
    other.write_bytes(b"y" * 50_000)
    written = []
    for i in range(5):
        path = tmp_path / "cam" / f"{i}.jpg"
        path.write_bytes(b"z" * 3000)
        os.utime(path, (time.time() - 50 + i, time.time() - 50 + i))
        written.append(path)
        store.added(path)
        assert store.total_bytes <= 10_000
    assert not older.exists()  # the oldest went first
    assert [p.exists() for p in written] == [False, False, True, True, True]
    assert other.exists() and store.removed == 3


def test_an_unwritable_directory_is_one_clear_error_and_the_recorder_goes_on(
    video, tmp_path, caplog
):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    bus = Bus()
    recorder = Recorder(make_config(blocker / "rec", pre_s=1, post_s=1), bus, LABELS)
    recorder.start()
    try:
        with caplog.at_level(logging.ERROR, logger="streams.record.recorder"):
            play(recorder, video, events_at={50, 100, 150})
            with pytest.raises(RecordError, match=f"stream bikes: .*into {blocker / 'rec'}"):
                recorder.snapshot("bikes")
    finally:
        recorder.close()
    assert bus.messages == []
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors  # once a minute per stream; the rest counted
    assert errors[0].startswith(f"stream bikes: cannot write its snapshot into {blocker / 'rec'}")
    assert "not a directory" in errors[0].lower() and "the pipeline goes on" in errors[0]
    counts = recorder.counts["bikes"].snapshot()
    assert counts["errors"] == 3 + 3 + 1  # 3 snapshots, 3 clips, the request


def test_a_full_queue_drops_jobs_and_counts_them(video, tmp_path):
    bus = Bus()
    recorder = Recorder(make_config(tmp_path, queue_size=2), bus, LABELS)  # not started
    play(recorder, video, events_at={10, 20, 30, 40, 50}, frames=60)
    assert recorder.counts["bikes"].dropped == 3
    assert bus.messages == []


def test_a_clip_of_a_stream_that_restarted_is_refused_in_words(video, tmp_path):
    """A new segment (the file looped, the camera reconnected) empties the ring: a clip still
    waiting for the old segment's packets says so instead of mixing the two."""
    bus = Bus()
    recorder = Recorder(make_config(tmp_path, pre_s=1, post_s=4), bus, LABELS)
    play(recorder, video, events_at={240})
    recorder.ring_for("bikes")  # the worker's new session: a new ring
    recorder.start()
    recorder.close()
    assert bus.of("snapshot") and not bus.of("clip")
    assert recorder.counts["bikes"].errors == 1


def test_topics():
    assert topic("clip", "cam1") == "clip/cam1/" and topic("snapshot", "cam1") == "snapshot/cam1/"
    assert av.__version__  # remuxing needs PyAV's add_stream_from_template (PyAV >= 12)


def test_a_frame_without_pixels_is_decoded_from_the_ring_for_its_snapshot(video, tmp_path):
    """The NVDEC path's snapshot, without a GPU: the frame came without pixels, so the writer
    decodes the event's picture from the ring on the CPU: the same picture OpenCV decoded."""
    bus = Bus()
    recorder = Recorder(make_config(tmp_path, pre_s=1, post_s=1), bus, LABELS)
    recorder.start()
    try:
        frames = play(recorder, video, events_at={37, 130}, on_gpu=True)
    finally:
        recorder.close()
    snapshots = bus.of("snapshot")
    assert [s["seq"] for s in snapshots] == [37, 130]
    for snapshot in snapshots:
        image = cv2.imread(snapshot["path"])
        original = frames[snapshot["seq"]].image_bgr
        assert np.abs(box_edge_bgr(image, BOX[0]) - EVENT_BGR).max() < 40
        inside = (slice(100, 160), slice(140, 220))  # inside the box: the picture itself
        assert np.abs(image[inside].astype(int) - original[inside]).mean() < 8
        # Not its neighbour: the picture a frame earlier differs more than JPEG does.
        before = frames[snapshot["seq"] - 1].image_bgr
        here = np.abs(image[inside].astype(int) - original[inside]).mean()
        assert here < np.abs(image[inside].astype(int) - before[inside]).mean()
