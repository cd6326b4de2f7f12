"""Faults injected for real: damaged files, refused and frozen cameras, signals, secrets."""

import itertools
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import (
    Collector,
    cleanup,
    free_port,
    run_cli,
    start_cli,
    tcp_connected,
    wait_until,
    write_config,
)
from tests.support.rtsp import make_test_clip


@pytest.fixture(scope="module")
def clip(assets, tmp_path_factory) -> Path:
    """bikes.mp4 as 10 s of H.264 with a keyframe every second."""
    if shutil.which("ffmpeg") is None:
        if os.environ.get("STREAMS_REQUIRE_RTSP"):
            pytest.fail("ffmpeg is required here (make test installs it)")
        pytest.skip("ffmpeg not installed")
    return make_test_clip(assets.videos["bikes.mp4"], tmp_path_factory.mktemp("faults") / "c.mp4")


def damaged_copy(src: Path, dst: Path, start_fraction: float, length: int) -> Path:
    data = bytearray(src.read_bytes())
    start = int(len(data) * start_fraction)
    data[start : start + length] = os.urandom(length)
    dst.write_bytes(bytes(data))
    return dst


def run_file(tmp_path: Path, path: Path) -> tuple[subprocess.CompletedProcess, Collector]:
    port = free_port()
    config = write_config(
        # fps 2: every frame is still decoded (damage and all), one in 12.5 inferred
        tmp_path / "c.yaml",
        [{"id": "cam", "url": str(path), "pace": "none", "fps": 2}],
        port,
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    try:
        result = run_cli("run", str(config), "--no-live", timeout=120)
    finally:
        collector.finish()
    return result, collector


def test_garbage_in_the_middle_of_a_stream_is_skipped(clip, tmp_path):
    damaged = damaged_copy(clip, tmp_path / "damaged.mp4", 0.45, 30_000)
    result, collector = run_file(tmp_path, damaged)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    dets = collector.of("det", "cam")
    assert any(m["pts"] < 3 for m in dets) and any(m["pts"] > 7 for m in dets), (
        "frames before and after the damage were processed"
    )
    assert collector.of("status", "cam")[-1]["state"] == "ended"


def test_corrupt_first_keyframe_does_not_crash(clip, tmp_path):
    data = clip.read_bytes()
    mdat = data.index(b"mdat") + 4  # the first video frame (the keyframe) starts here
    damaged = bytearray(data)
    damaged[mdat : mdat + 8000] = os.urandom(8000)
    (tmp_path / "bad-start.mp4").write_bytes(bytes(damaged))
    result, collector = run_file(tmp_path, tmp_path / "bad-start.mp4")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    states = [m["state"] for m in collector.of("status", "cam")]
    # Either the decoder recovers at the next keyframe (1 s later), or the stream fails cleanly.
    recovered = any(m["pts"] >= 1.0 for m in collector.of("det", "cam"))
    assert recovered or states[-1] == "failed", states
    assert states[-1] in ("ended", "failed")


def test_audio_only_file_fails_with_a_reason(tmp_path):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    audio = tmp_path / "audio.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=d=2",
            "-c:a",
            "aac",
            str(audio),
        ],
        check=True,
    )
    result, collector = run_file(tmp_path, audio)
    assert result.returncode == 1  # its only stream never went live (issue 11 item 10)
    assert "no stream ever went live" in result.stderr and "Traceback" not in result.stderr
    failed = [m for m in collector.of("status", "cam") if m["state"] == "failed"]
    assert failed and "audio.mp4" in failed[0]["reason"]


INITIAL_S, MAX_S = 0.05, 0.4  # 8 retries in 2.4 s, the cap reached at the 4th


def test_reconnect_backoff_doubles_with_jitter_up_to_the_cap(tmp_path):
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [{"id": "cam", "url": f"rtsp://127.0.0.1:{free_port()}/live"}],
        port,
        capture={"reconnect_initial_s": INITIAL_S, "reconnect_max_s": MAX_S, "open_timeout_s": 2},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}", kinds=("status",))
    process = start_cli("run", str(config), "--no-live")
    try:
        assert collector.wait_for(lambda c: len(c.of("status", "cam")) >= 9, 30), process.output()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        collector.finish()
    retries = [m for m in collector.of("status", "cam") if m["state"] == "reconnecting"]
    assert [m["attempt"] for m in retries[:8]] == list(range(1, 9))
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(retries)][:7]
    expected = [min(INITIAL_S * 2**k, MAX_S) for k in range(len(gaps))]
    for gap, planned in zip(gaps, expected):
        # delay +-20 % jitter, plus the (refused at once) connection attempt itself
        assert 0.75 * planned <= gap <= 1.25 * planned + 0.3, (gaps, expected)
    assert max(gaps) <= MAX_S * 1.25 + 0.3


def test_credentials_never_leak(tmp_path):
    secret = "hunter2-secret"
    port, metrics_port = free_port(), free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [{"id": "cam", "url": f"rtsp://admin:{secret}@127.0.0.1:{free_port()}/live"}],
        port,
        metrics={"port": metrics_port},
        capture={"reconnect_initial_s": 0.1, "reconnect_max_s": 0.2},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("--log-level", "debug", "run", str(config), "--no-live")
    try:
        assert collector.wait_for(lambda c: len(c.of("status", "cam")) >= 4, 30), process.output()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        collector.finish()
    reasons = " ".join(m.get("reason", "") for m in collector.of("status", "cam"))
    assert "rtsp://***@127.0.0.1" in reasons
    for text in (reasons, process.output(), metrics.decode(), str(collector.messages)):
        assert secret not in text


def stuck_in_open(process, server, timeout_s: float = 60) -> None:
    """Wait until the pipeline's capture worker has connected to the frozen camera: it is in
    open() then, waiting for an answer that never comes."""
    assert wait_until(
        lambda: process.poll() is not None or tcp_connected(process.pid, server.port), timeout_s
    ), f"no connection to the camera:\n{process.output()}"
    assert process.poll() is None, process.output()


@pytest.mark.rtsp
def test_second_signal_exits_at_once(rtsp_server, tmp_path):
    server = rtsp_server(path="cam")
    server.freeze()  # connections open, nobody answers: the capture worker waits in open()
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [{"id": "cam", "url": server.url}],
        port,
        capture={"open_timeout_s": 60},
    )
    process = start_cli("run", str(config), "--no-live")
    try:
        stuck_in_open(process, server)
        process.send_signal(signal.SIGTERM)  # drain: waits (at most 4 s) for the stuck worker
        assert wait_until(lambda: "SIGTERM: draining" in process.output(), 10), process.output()
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        began = time.monotonic()
        assert process.wait(timeout=5) == 128 + signal.SIGTERM
        assert time.monotonic() - began < 1.0
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.rtsp
def test_one_signal_drains_within_five_seconds_even_with_a_stuck_camera(rtsp_server, tmp_path):
    server = rtsp_server(path="cam")
    server.freeze()
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [{"id": "cam", "url": server.url}],
        port,
        capture={"open_timeout_s": 60},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}", kinds=("status",))
    process = start_cli("run", str(config), "--no-live")
    try:
        stuck_in_open(process, server)
        code, drain_s = process.drain(timeout_s=10)
        assert code == 0
        assert drain_s < 5.0
    finally:
        cleanup(process, collector)
    assert collector.of("status", "cam")[-1]["state"] == "ended"
