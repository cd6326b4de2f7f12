"""The whole pipeline on the sample videos, published to a real ZeroMQ subscriber."""

import signal
import urllib.request

import pytest

from streams.bus.messages import validate
from tests.helpers import Collector, cleanup, free_port, iou, run_cli, start_cli, write_config

# Hand-checked ground truth in bikes.mp4 (640x272, 25 fps): a cyclist in a black shirt rides
# through the middle of the frame around 4.9 s; a white car is parked on the left around 6.6 s.
# In carphone_pristine.mp4 (176x144) a man talks on the phone, filling most of the frame.
CYCLIST_BOX, CYCLIST_PTS = [374, 7, 493, 266], (4.4, 5.4)
CAR_BOX, CAR_PTS = [25, 90, 190, 165], (6.2, 6.9)
DRIVER_BOX = [10, 20, 165, 144]


def found(dets, label, box, pts_range, min_iou=0.5) -> bool:
    return any(
        pts_range[0] <= m["pts"] <= pts_range[1]
        and any(d["label"] == label and iou(d["box"], box) >= min_iou for d in m["detections"])
        for m in dets
    )


def test_sample_videos_flow_to_a_real_subscriber(assets, tmp_path):
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [
            {"id": "bikes", "url": str(assets.videos["bikes.mp4"]), "pace": "none", "fps": 5},
            {
                "id": "carphone",
                "url": str(assets.videos["carphone_pristine.mp4"]),
                "pace": "none",
                "fps": 5,
            },
        ],
        port,
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    try:
        result = run_cli("run", str(config), "--no-live", timeout=180)
    finally:
        collector.finish()
    assert result.returncode == 0, result.stderr
    assert "summary:" in result.stderr

    for topic, message in collector.messages:
        validate(topic, message)  # every message matches the documented schema

    bikes, carphone = collector.of("det", "bikes"), collector.of("det", "carphone")
    # pace: none is lossless; fps: 5 keeps one frame per 0.2 s of pts: 10 s -> 50, 4 s -> 20.
    assert [m["seq"] for m in bikes] == list(range(50))
    assert [m["seq"] for m in carphone] == list(range(20))
    assert [round(m["pts"], 1) for m in bikes[:3]] == [0.0, 0.2, 0.4]
    assert found(bikes, "person", CYCLIST_BOX, CYCLIST_PTS)
    assert found(bikes, "car", CAR_BOX, CAR_PTS)
    assert found(carphone, "person", DRIVER_BOX, (0.0, 1.0))
    assert all(m["width"] == 640 and m["height"] == 272 for m in bikes)
    assert all(m["latency_ms"]["total"] >= m["latency_ms"]["inference"] > 0 for m in bikes)

    for stream in ("bikes", "carphone"):
        states = [m["state"] for m in collector.of("status", stream)]
        assert states == ["connecting", "live", "ended"], (stream, states)
        live = next(m for m in collector.of("status", stream) if m["state"] == "live")
        assert live["decoder"] == "opencv"  # the CPU backend never hands frames to NVDEC
    assert collector.of("stats"), "periodic stats were published"


def test_per_stream_subscription_is_exact(assets, tmp_path):
    port = free_port()
    video = str(assets.videos["carphone_pristine.mp4"])
    config = write_config(
        tmp_path / "c.yaml",
        [
            {"id": "cam1", "url": video, "pace": "none", "fps": 2},
            {"id": "cam10", "url": video, "pace": "none", "fps": 2},
        ],
        port,
    )
    only_cam1 = Collector(f"tcp://127.0.0.1:{port}", stream="cam1")
    everything = Collector(f"tcp://127.0.0.1:{port}")
    try:
        assert run_cli("run", str(config), "--no-live").returncode == 0
    finally:
        only_cam1.finish()
        everything.finish()
    assert everything.of("det", "cam10"), "cam10 was published"
    assert only_cam1.of("det", "cam1")
    assert {m["stream"] for m in only_cam1.of("det")} == {"cam1"}
    assert {m["stream"] for m in only_cam1.of("status")} == {"cam1"}


def test_broken_streams_fail_alone_and_sigterm_drains(assets, tmp_path, http_page):
    """Garbage bytes named .mp4, a zero-byte file and a web page that is not a stream each
    report their own status; the good looping stream keeps flowing; SIGTERM drains fast."""
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 64)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    port, metrics_port = free_port(), free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [
            {"id": "good", "url": str(assets.videos["bikes.mp4"]), "loop": True, "fps": 5},
            {"id": "garbage", "url": str(garbage)},
            {"id": "empty", "url": str(empty)},
            {"id": "webpage", "url": http_page},
        ],
        port,
        metrics={"port": metrics_port},
        capture={"open_timeout_s": 2, "reconnect_initial_s": 0.2, "reconnect_max_s": 1},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")
    try:
        assert collector.wait_for(
            lambda c: len(c.of("det", "good")) >= 10 and len(c.of("status", "webpage")) >= 3, 60
        ), process.output() if process.poll() is not None else "no detections"
        for stream, name in (("garbage", "garbage.mp4"), ("empty", "empty.mp4")):
            failed = [m for m in collector.of("status", stream) if m["state"] == "failed"]
            assert failed and name in failed[0]["reason"], collector.of("status", stream)
        retries = [m for m in collector.of("status", "webpage") if m["state"] == "reconnecting"]
        assert [m["attempt"] for m in retries[:2]] == [1, 2]
        assert "cannot open stream" in retries[0]["reason"]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
        assert 'streams_frames_processed_total{stream="good"}' in metrics
        code, drain_s = process.drain(timeout_s=10)
        assert code == 0
        assert drain_s < 5.0
    finally:
        cleanup(process, collector)
    for stream in ("good", "webpage"):
        assert collector.of("status", stream)[-1]["state"] == "ended"
    assert not collector.of("det", "garbage") and not collector.of("det", "empty")


@pytest.fixture
def http_page():
    """A real web server whose page is HTML, not video."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html><body>not a video</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()


@pytest.mark.parametrize(
    "streams, message",
    [
        ([{"id": "a", "url": "/definitely/missing.mp4"}], "streams[0].url: file not found"),
        ([{"id": "a", "url": "rtsp://"}], "streams[0].url: 'rtsp://' has no host"),
    ],
)
def test_bad_config_exits_2_before_starting(tmp_path, streams, message):
    config = write_config(tmp_path / "c.yaml", streams, free_port())
    result = run_cli("run", str(config), "--no-live", timeout=60)
    assert result.returncode == 2
    assert message in result.stderr


def test_model_that_is_not_onnx_is_a_clear_error(assets, tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_text("this is not a model")
    config = write_config(
        tmp_path / "c.yaml",
        [{"id": "a", "url": str(assets.videos["bikes.mp4"])}],
        free_port(),
        model={"path": str(fake)},
    )
    result = run_cli("run", str(config), "--no-live", timeout=60)
    assert result.returncode == 1
    assert "model.onnx: ONNX Runtime cannot load this model" in result.stderr
    assert "Traceback" not in result.stderr


def test_subscribe_command_prints_validated_results(assets, tmp_path):
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [
            {
                "id": "cam",
                "url": str(assets.videos["carphone_pristine.mp4"]),
                "loop": True,
                "fps": 10,
            },
        ],
        port,
    )
    pipeline = start_cli("run", str(config), "--no-live")
    try:
        result = run_cli(
            "subscribe",
            f"tcp://127.0.0.1:{port}",
            "--stream",
            "cam",
            "--kinds",
            "det",
            "--count",
            "5",
            "--validate",
            timeout=60,
        )
    finally:
        pipeline.send_signal(signal.SIGINT)
        assert pipeline.wait(timeout=10) == 0
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert all(line.startswith("det cam #") for line in lines)
    assert "person" in result.stdout  # the man in the car
    assert "INVALID" not in result.stderr


def test_subscribe_reports_sequence_gaps(tmp_path):
    """A consumer can tell lost frames from seq: `streams subscribe --gaps` prints each gap."""
    import zmq

    from streams.bus.messages import encode, topic

    port = free_port()
    # An XPUB, not a PUB: it receives the subscriber's subscription, so the test knows when
    # messages will reach it (no slow-joiner sleep).
    context = zmq.Context()
    publisher = context.socket(zmq.XPUB)
    publisher.setsockopt(zmq.LINGER, 1000)
    publisher.bind(f"tcp://127.0.0.1:{port}")
    subscriber = start_cli(
        "subscribe", f"tcp://127.0.0.1:{port}", "--kinds", "det", "--count", "4", "--gaps"
    )
    try:
        assert publisher.poll(30_000), subscriber.output()  # the subscriber process started
        assert publisher.recv() == b"\x01" + topic("det").encode()  # and subscribed to det
        for seq in (0, 1, 4, 5):  # 2 and 3 never arrive
            publisher.send_multipart(
                [
                    topic("det", "cam").encode(),
                    encode(
                        {
                            "v": 1,
                            "type": "det",
                            "stream": "cam",
                            "seq": seq,
                            "pts": seq / 25,
                            "latency_ms": {"total": 1.0},
                            "detections": [],
                        }
                    ),
                ]
            )
        assert subscriber.wait(timeout=20) == 0
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
        publisher.close()
        context.term()
    assert "GAP cam: 2 frames missing (seq 1 -> 4)" in subscriber.output()
