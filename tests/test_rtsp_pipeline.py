"""The pipeline against a real RTSP server (GStreamer) that is killed, frozen and restarted."""

import signal
import time

import pytest

from tests.helpers import Collector, cleanup, free_port, start_cli, write_config
from tests.support.rtsp import make_test_clip

pytestmark = pytest.mark.rtsp

CAPTURE = {
    "open_timeout_s": 3,
    "read_timeout_s": 2,
    "reconnect_initial_s": 0.2,
    "reconnect_max_s": 1,
}


@pytest.fixture(scope="module")
def street_clip(assets, tmp_path_factory):
    """bikes.mp4 re-encoded for RTSP (keyframe every second), 10 s, served in a loop."""
    return make_test_clip(
        assets.videos["bikes.mp4"], tmp_path_factory.mktemp("rtsp") / "street.mp4"
    )


def count(collector, kind, stream):
    return len(collector.of(kind, stream))


def states(collector, stream):
    return [m["state"] for m in collector.of("status", stream)]


def run_with_camera(tmp_path, assets, camera_url):
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [
            {"id": "cam1", "url": camera_url, "fps": 5},
            {
                "id": "file",
                "url": str(assets.videos["carphone_pristine.mp4"]),
                "loop": True,
                "fps": 5,
            },
        ],
        port,
        capture=CAPTURE,
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    return collector, start_cli("run", str(config), "--no-live")


def restart_and_expect_detections(server, collector, stream: str, more: int) -> None:
    """Kill the (possibly frozen) camera, bring it back on the same URL, and wait until
    ``more`` new detections arrive from it."""
    server.kill()
    server.restart()
    before = count(collector, "det", stream)
    assert collector.wait_for(lambda c: count(c, "det", stream) >= before + more, 30), states(
        collector, stream
    )


def stop(process, collector):
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0, process.output()[-2000:]
    finally:
        cleanup(process, collector)


def test_camera_killed_and_restarted_while_other_stream_flows(
    assets, rtsp_server, street_clip, tmp_path
):
    server = rtsp_server(street_clip, path="cam1")
    collector, process = run_with_camera(tmp_path, assets, server.url)
    try:
        assert collector.wait_for(lambda c: count(c, "det", "cam1") >= 10, 60), process.output()
        server.kill()
        assert collector.wait_for(lambda c: "reconnecting" in states(c, "cam1"), 15)
        retry = next(m for m in collector.of("status", "cam1") if m["state"] == "reconnecting")
        assert retry["attempt"] == 1 and retry["reason"]
        # While the camera is down, the file stream keeps flowing.
        file_before, cam_before = count(collector, "det", "file"), count(collector, "det", "cam1")
        assert collector.wait_for(lambda c: count(c, "det", "file") >= file_before + 10, 20)
        assert count(collector, "det", "cam1") <= cam_before + 2  # at most a few in flight
        server.restart()
        assert collector.wait_for(
            lambda c: (
                states(c, "cam1")[-1] == "live" and count(c, "det", "cam1") >= cam_before + 10
            ),
            30,
        ), states(collector, "cam1")
    finally:
        stop(process, collector)
    seqs = [m["seq"] for m in collector.of("det", "cam1")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "seq keeps counting up"
    labels = {d["label"] for m in collector.of("det", "cam1") for d in m["detections"]}
    assert labels & {"person", "car", "bicycle"}, labels  # the street scene, live over RTSP
    # A camera frame's latency counts from when its packet arrived, not from when the capture
    # thread began waiting for the camera (that wait, up to a frame interval, is no latency).
    decode_ms = sorted(m["latency_ms"]["decode"] for m in collector.of("det", "cam1"))
    assert decode_ms[len(decode_ms) // 2] < 25, decode_ms  # the frame interval is 40 ms
    assert states(collector, "cam1")[:2] == ["connecting", "live"]
    assert states(collector, "cam1")[-1] == "ended"


@pytest.mark.slow
def test_frozen_camera_is_noticed_by_the_stall_watchdog(assets, rtsp_server, street_clip, tmp_path):
    server = rtsp_server(street_clip, path="cam1")
    collector, process = run_with_camera(tmp_path, assets, server.url)
    try:
        assert collector.wait_for(lambda c: count(c, "det", "cam1") >= 10, 60), process.output()
        server.freeze()  # SIGSTOP: the connection stays open, no data flows
        frozen_at = time.monotonic()
        assert collector.wait_for(lambda c: "reconnecting" in states(c, "cam1"), 15)
        noticed_s = time.monotonic() - frozen_at
        retry = next(m for m in collector.of("status", "cam1") if m["state"] == "reconnecting")
        assert "stalled" in retry["reason"], retry
        # read_timeout_s is 2: the stall is noticed within about one timeout, not three.
        assert noticed_s < 2 * CAPTURE["read_timeout_s"] + 1.5, noticed_s
        restart_and_expect_detections(server, collector, "cam1", 10)
    finally:
        stop(process, collector)
