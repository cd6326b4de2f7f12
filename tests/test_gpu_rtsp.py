"""A live camera on the GPU path: RTSP packets to NVDEC to TensorRT, through kills and freezes.

GPU host only. The camera is the real GStreamer RTSP server (see ``tests/support/rtsp.py``),
killed, restarted and frozen (SIGSTOP) while a file stream runs beside it.
"""

import pytest

from tests.helpers import Collector, free_port, start_cli, write_config
from tests.support.rtsp import make_test_clip
from tests.test_gpu_pipeline import tensorrt_ready, trt_engine
from tests.test_rtsp_pipeline import CAPTURE, count, restart_and_expect_detections, states, stop

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.rtsp,
    pytest.mark.skipif(tensorrt_ready() is not None, reason=str(tensorrt_ready())),
]


def live_decoders(collector, stream):
    return [m.get("decoder") for m in collector.of("status", stream) if m["state"] == "live"]


def test_camera_on_nvdec_survives_kill_restart_and_freeze(assets, rtsp_server, tmp_path):
    clip = make_test_clip(assets.videos["bikes.mp4"], tmp_path / "street.mp4")
    server = rtsp_server(clip, path="cam1")
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [
            {"id": "cam1", "url": server.url},
            {"id": "file", "url": str(assets.videos["carphone_pristine.mp4"]), "loop": True},
        ],
        port,
        capture=CAPTURE,
        engine=trt_engine(tmp_path),
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")
    try:
        assert collector.wait_for(lambda c: count(c, "det", "cam1") >= 25, 180), process.output()[
            -3000:
        ]
        assert live_decoders(collector, "cam1") == ["nvdec"], collector.of("status", "cam1")
        server.kill()
        assert collector.wait_for(lambda c: "reconnecting" in states(c, "cam1"), 15)
        file_before = count(collector, "det", "file")
        assert collector.wait_for(lambda c: count(c, "det", "file") >= file_before + 30, 20)
        cam_before = count(collector, "det", "cam1")
        server.restart()
        assert collector.wait_for(
            lambda c: (
                len(live_decoders(c, "cam1")) == 2 and count(c, "det", "cam1") >= cam_before + 25
            ),
            30,
        ), states(collector, "cam1")
        server.freeze()
        assert collector.wait_for(
            lambda c: any("stalled" in (m.get("reason") or "") for m in c.of("status", "cam1")), 15
        ), collector.of("status", "cam1")
        restart_and_expect_detections(server, collector, "cam1", 25)
    finally:
        stop(process, collector)
    assert set(live_decoders(collector, "cam1")) == {"nvdec"}
    labels = {d["label"] for m in collector.of("det", "cam1") for d in m["detections"]}
    assert labels & {"person", "bicycle", "car"}, labels  # the street scene, decoded by NVDEC
    # From the packet's arrival to the decoded picture, with NVDEC's low-latency mode: a few
    # milliseconds, not the frame interval (40 ms) the reader used to wait for the camera.
    decode_ms = sorted(m["latency_ms"]["decode"] for m in collector.of("det", "cam1"))
    assert decode_ms[len(decode_ms) // 2] < 25, decode_ms[::50]
    seqs = [m["seq"] for m in collector.of("det", "cam1")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert states(collector, "cam1")[-1] == "ended"
