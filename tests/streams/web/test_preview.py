"""The view's pictures without a pipeline: real XPUB/SUB sockets (and the supervisor's relay),
the preview thread's rate cap and latest-only hand-over, and the drawn JPEG itself."""

from __future__ import annotations

import time

import cv2
import numpy as np
import zmq

from processors.annotate import PALETTE
from processors.detections import Detections
from streams.bus.messages import decode_preview, preview_topic
from streams.bus.publisher import Publisher
from streams.config import PreviewConfig, PublishConfig, parse_config
from streams.runtime.preview import PreviewJob, PreviewMaker, watched_streams
from streams.runtime.stats import PipelineStats
from streams.scale.relay import Relay


def _publisher(endpoint: str = "tcp://127.0.0.1:0", connect: bool = False) -> Publisher:
    return Publisher(
        PublishConfig(endpoint=endpoint, join_grace_ms=0), PipelineStats(), connect=connect
    )


def _until(predicate, timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_the_publisher_sees_who_subscribes_until_the_last_one_leaves():
    publisher = _publisher()
    context = zmq.Context()
    try:
        first, second = context.socket(zmq.SUB), context.socket(zmq.SUB)
        for sub in (first, second):
            sub.connect(publisher.endpoint)
            sub.subscribe(b"preview/a/")
        first.subscribe(b"det/")
        assert _until(lambda: publisher.subscribed == {b"preview/a/", b"det/"})
        first.close(0)  # a closed connection counts as leaving
        assert _until(lambda: publisher.subscribed == {b"preview/a/"})
        second.unsubscribe(b"preview/a/")
        assert _until(lambda: publisher.subscribed == frozenset())
        second.close(0)
    finally:
        publisher.close()
        context.destroy(linger=0)


def test_subscriptions_reach_a_worker_process_publisher_through_the_relay(tmp_path):
    relay = Relay(PublishConfig(endpoint="tcp://127.0.0.1:0"), f"ipc://{tmp_path}/bus")
    worker = _publisher(relay.bus_endpoint, connect=True)
    context = zmq.Context()
    try:
        viewer = context.socket(zmq.SUB)
        viewer.connect(relay.endpoint)
        viewer.subscribe(preview_topic("cam").encode())
        assert _until(lambda: b"preview/cam/" in worker.subscribed)
        viewer.close(0)
        assert _until(lambda: b"preview/cam/" not in worker.subscribed)
    finally:
        worker.close()
        relay.close()
        context.destroy(linger=0)


def test_only_an_exact_preview_topic_makes_a_stream_watched():
    assert watched_streams(frozenset({b"preview/a/", b"preview/b.c-1/"})) == {"a", "b.c-1"}
    # Everything, every preview, a prefix of one, another kind: nobody watches a stream.
    assert watched_streams(frozenset({b"", b"preview/", b"preview/a", b"det/a/"})) == set()


class _Frame:
    def __init__(self, stream_id: str, seq: int) -> None:
        self.stream_id, self.seq = stream_id, seq


def test_pictures_are_capped_at_fps_per_watched_stream_and_none_for_others():
    publisher = _publisher()
    maker = PreviewMaker(publisher, ["person"], PreviewConfig(fps=4.0))
    context = zmq.Context()
    try:
        assert maker.due([_Frame("a", 0)]) == []  # nobody watches
        viewer = context.socket(zmq.SUB)
        viewer.connect(publisher.endpoint)
        viewer.subscribe(b"preview/a/")
        assert _until(lambda: maker.watched == {"a"})
        rows = []
        began = time.monotonic()
        while time.monotonic() - began < 2.0:  # 100 batches a second of streams a and b
            rows += [(i, time.monotonic()) for i in maker.due([_Frame("b", 0), _Frame("a", 0)])]
            time.sleep(0.01)
        assert {i for i, _ in rows} == {1}  # stream a's frames only
        assert 8 <= len(rows) <= 9  # 4 a second for 2 s (the first at once)
        gaps = np.diff([t for _, t in rows])
        assert gaps.min() >= 0.25 - 1e-6
    finally:
        maker.stop()
        publisher.close()
        context.destroy(linger=0)


def _job(image: np.ndarray, boxes: list[list[float]], classes: list[int], stream=None):
    n = len(boxes)
    return PreviewJob(
        stream_id="a",
        seq=7,
        pts_s=1.5,
        capture_wall_s=time.time(),
        source_hw=image.shape[:2],
        image=image,
        letterbox=None,
        detections=Detections(
            np.array(boxes, np.float32).reshape(n, 4),
            np.full(n, 0.9, np.float32),
            np.array(classes, np.int64),
        ),
        track_ids=np.arange(1, n + 1),
        stream=stream,
    )


def _near(pixels: np.ndarray, bgr, tolerance: int = 60) -> np.ndarray:
    return np.abs(pixels.astype(int) - np.array(bgr)).sum(axis=-1) < tolerance


def test_the_jpeg_is_scaled_and_has_each_box_where_it_was_detected():
    maker = PreviewMaker(_publisher(), ["person", "bicycle"], PreviewConfig(max_width=640))
    try:
        source = np.full((720, 1280, 3), 128, np.uint8)  # grey: no palette colour anywhere
        boxes = [[200, 300, 600, 700], [800, 100, 1200, 400]]
        header, jpeg = decode_preview(maker.make(_job(source, boxes, [0, 1])))
        picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    finally:
        maker._publisher.close()
    assert picture.shape == (360, 640, 3)
    assert (header["stream"], header["seq"], header["width"], header["height"]) == (
        "a",
        7,
        1280,
        720,
    )
    assert (header["picture_width"], header["picture_height"]) == (640, 360)
    assert source.mean() == 128  # drawn on a copy, never on the decoder's frame
    for (x0, y0, x1, y1), colour in zip(boxes, PALETTE[:2]):
        x0, y0, x1, y1 = (round(v / 2) for v in (x0, y0, x1, y1))  # 1280 -> 640
        mask = _near(picture, colour)
        # Its left and right edges (below the label) and its bottom edge are drawn ...
        assert mask[y0 + 20 : y1 - 2, x0 - 1 : x0 + 2].any(axis=1).mean() > 0.9
        assert mask[y0 + 20 : y1 - 2, x1 - 1 : x1 + 2].any(axis=1).mean() > 0.9
        assert mask[y1 - 1 : y1 + 2, x0 + 2 : x1 - 2].any(axis=0).mean() > 0.9
        # ... and its inside is not.
        assert not mask[y0 + 25 : y1 - 10, x0 + 10 : x1 - 10].any()
    # Nothing of the box colours away from the boxes.
    assert not _near(picture[:, 320:380], PALETTE[0]).any()


def test_zones_and_lines_of_the_stream_are_drawn(tmp_path):
    config = parse_config(
        {
            "streams": [
                {
                    "id": "a",
                    "url": "sample:bikes.mp4",
                    "tracking": {"enabled": True},
                    "zones": [{"name": "z", "points": [[100, 100], [500, 100], [500, 500]]}],
                    "lines": [{"name": "l", "units": "fraction", "a": [0, 0.9], "b": [1, 0.9]}],
                }
            ]
        }
    )
    maker = PreviewMaker(_publisher(), ["person"], PreviewConfig(max_width=640))
    try:
        source = np.full((720, 1280, 3), 128, np.uint8)
        _, jpeg = decode_preview(maker.make(_job(source, [], [], config.streams[0])))
    finally:
        maker._publisher.close()
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    from processors.annotate import LINE_BGR, ZONE_BGR

    assert _near(picture[49:52, 60:240], ZONE_BGR).any(axis=0).mean() > 0.9  # y 100 -> 50
    assert _near(picture[322:326, 10:630], LINE_BGR).any(axis=0).mean() > 0.9  # 0.9 * 360


def test_the_thread_keeps_only_each_streams_newest_picture():
    publisher = _publisher()
    maker = PreviewMaker(publisher, ["person"], PreviewConfig())
    source = np.full((72, 128, 3), 128, np.uint8)
    jobs = [_job(source, [], []) for _ in range(5)]
    for seq, job in enumerate(jobs):
        job.seq = seq
    maker.offer(jobs)  # before the thread runs: one stream, five pictures
    maker.start()
    try:
        assert _until(lambda: maker.encoded == 1)
        time.sleep(0.2)
        assert (maker.encoded, maker.skipped) == (1, 4)
    finally:
        maker.stop()
        publisher.close()
