"""Snapshots and clips on the GPU path: NVDEC decodes (frames stay on the GPU), TensorRT
infers; a recording file is demuxed a second time by PyAV for its packets, a camera's packets
are the ones PyAV demuxes for NVDEC; snapshots are decoded from the ring on the CPU.

GPU host only (skips elsewhere). The same checks as tests/test_record_pipeline.py: each clip
is the source's packets (ffprobe: codec, profile, packet bytes) and covers its events; each
snapshot shows the event's box in red where TensorRT saw the object.

Run on the GPU host:
    python -m pytest -q -m gpu tests/test_gpu_record.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from streams.bus.messages import validate
from tests.helpers import Collector, cleanup, free_port, run_cli, start_cli, write_config
from tests.support.hand_count import analytics_config, load_hand_count
from tests.support.probe import decodes_cleanly, ffprobe, picture_hashes
from tests.support.rtsp import make_test_clip
from tests.test_gpu_pipeline import tensorrt_ready, trt_engine
from tests.test_record_pipeline import WHOLE_FRAME, of, red_edge_fraction

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(tensorrt_ready() is not None, reason=str(tensorrt_ready())),
]


def check_clips_and_snapshots(
    messages, stream: str, source: dict, same_bytes: bool, pictures: list[str] | None = None
) -> None:
    """``same_bytes``: the clip's packets are the source file's; ``pictures``: the served
    file's picture hashes, which a camera's clips decode to, in order (looped)."""
    clips, snapshots = of(messages, "clip", stream), of(messages, "snapshot", stream)
    assert clips and snapshots, (clips, snapshots)
    for clip in clips:
        path = Path(clip["path"])
        probe = ffprobe(path)
        assert (probe["codec"], probe["profile"]) == (source["codec"], source["profile"])
        assert (probe["width"], probe["height"]) == (source["width"], source["height"])
        if same_bytes:
            first = source["hashes"].index(probe["hashes"][0])
            assert probe["hashes"] == source["hashes"][first : first + probe["frames"]], path
        assert probe["keyframes"][0] and decodes_cleanly(path) == "", path
        if pictures is not None:
            got = picture_hashes(path)
            at = pictures.index(got[0])
            assert got == [pictures[(at + k) % len(pictures)] for k in range(len(got))], path
        for event in clip["events"]:
            assert clip["start"] <= event["pts"] <= clip["end"], clip
    dets = {m["seq"]: m for m in of(messages, "det", stream)}
    drawn = 0
    for snapshot in snapshots:
        image = cv2.imread(snapshot["path"])
        assert image is not None and image.shape[:2] == (source["height"], source["width"])
        for event in snapshot["events"]:
            boxes = [
                d["box"]
                for d in dets[snapshot["seq"]]["detections"]
                if d["track_id"] == event["track_id"]
            ]
            if boxes:
                assert red_edge_fraction(image, boxes[0]) > 0.8, snapshot
                drawn += 1
    assert drawn >= 1
    (row,) = [r for r in of(messages, "stats")[-1]["streams"] if r["stream"] == stream]
    assert row["record"]["errors"] == 0 and row["record"]["snapshots"] == len(snapshots)


def test_a_file_on_nvdec_gets_snapshots_and_clips(assets, tmp_path):
    truth = load_hand_count()
    video = assets.videos[truth.clip]
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [{"id": "bikes", "url": str(video), "pace": "none", **analytics_config(truth)}],
        port,
        engine=trt_engine(tmp_path),
        tracking={"enabled": True},
        record={"enabled": True, "dir": str(tmp_path / "rec"), "pre_s": 2, "post_s": 2},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    try:
        result = run_cli("run", str(config), "--no-live", timeout=280)
    finally:
        collector.finish()
    assert result.returncode == 0, result.stderr[-3000:]
    messages = list(collector.messages)
    for topic, message in messages:
        validate(topic, message)
    lives = [m for m in of(messages, "status", "bikes") if m["state"] == "live"]
    assert lives and lives[0]["decoder"] == "nvdec", lives
    check_clips_and_snapshots(messages, "bikes", ffprobe(video), same_bytes=True)


@pytest.mark.rtsp
def test_a_camera_on_nvdec_gets_snapshots_and_clips(assets, rtsp_server, tmp_path):
    clip = make_test_clip(assets.videos["bikes.mp4"], tmp_path / "street.mp4")
    server = rtsp_server(clip, path="cam1")
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [{"id": "cam1", "url": server.url, "zones": [WHOLE_FRAME]}],
        port,
        engine=trt_engine(tmp_path),
        capture={"open_timeout_s": 5, "read_timeout_s": 3},
        tracking={"enabled": True},
        record={"enabled": True, "dir": str(tmp_path / "rec"), "pre_s": 2, "post_s": 2},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")
    try:
        assert collector.wait_for(lambda c: len(c.of("clip", "cam1")) >= 2, 180), process.output()[
            -3000:
        ]
        code, _ = process.drain(timeout_s=20)
        assert code == 0, process.output()[-3000:]
    finally:
        cleanup(process, collector)
    messages = list(collector.messages)
    lives = [m for m in of(messages, "status", "cam1") if m["state"] == "live"]
    assert lives and lives[0]["decoder"] == "nvdec", lives
    check_clips_and_snapshots(
        messages, "cam1", ffprobe(clip), same_bytes=False, pictures=picture_hashes(clip)
    )
