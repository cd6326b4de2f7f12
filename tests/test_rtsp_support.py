"""The RTSP test harness itself: a real server that OpenCV (pip wheel, FFmpeg backend) can read,
that survives kill/restart on the same port, serves several clients, and can be frozen.

Timings are printed (run with ``-s`` to see them) so the capture code's timeouts can be chosen
from measurements.
"""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from tests.support import fixtures

# The harness fixtures (harmless if tests/conftest.py registers them too).
rtsp_clip = fixtures.rtsp_clip
rtsp_server = fixtures.rtsp_server

cv2 = pytest.importorskip("cv2")

pytestmark = pytest.mark.rtsp

TIMEOUT_MS = 5000
# The frozen-server test waits for every timeout to expire (reads, then an open): the same
# bounds in units of a shorter timeout, so it waits seconds, not tens of seconds.
FROZEN_TIMEOUT_MS = 2000


@pytest.fixture(autouse=True)
def _rtsp_over_tcp(monkeypatch):
    # Read by OpenCV's FFmpeg backend when a capture is opened.
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")


def open_capture(url: str, timeout_ms: int = TIMEOUT_MS):
    """Open ``url`` with open/read timeouts (5 s unless told); returns (capture, seconds taken
    to open)."""
    t0 = time.monotonic()
    cap = cv2.VideoCapture(
        url,
        cv2.CAP_FFMPEG,
        [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms],
    )
    return cap, time.monotonic() - t0


def read_frames(cap, count: int, timeout: float = 20.0) -> list:
    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    return frames


def read_until_failure(cap, limit: float = 60.0) -> dict:
    """Read until a read fails. Returns seconds until then ("fail_s"), the longest single read
    ("max_block_s"), and how many reads still succeeded ("ok_reads"), and how many of those took
    longer than 1 s ("slow_ok_reads": after a read timeout OpenCV drains the decoder's delayed
    frames, so a timed-out read can still return True)."""
    t0 = time.monotonic()
    max_block, ok_reads, slow_ok = 0.0, 0, 0
    while time.monotonic() - t0 < limit:
        t_read = time.monotonic()
        ok, _ = cap.read()
        block = time.monotonic() - t_read
        max_block = max(max_block, block)
        if not ok:
            return {
                "fail_s": round(time.monotonic() - t0, 2),
                "max_block_s": round(max_block, 2),
                "ok_reads": ok_reads,
                "slow_ok_reads": slow_ok,
            }
        ok_reads += 1
        slow_ok += block > 1.0
    pytest.fail(f"reads still succeed {limit:.0f} s after the server went away")


def test_read_kill_restart_same_port(rtsp_server):
    server = rtsp_server(path="cam1")
    cap, open_s = open_capture(server.url)
    assert cap.isOpened(), f"cannot open {server.url}\n{server.log()}"
    frames = read_frames(cap, 20)
    assert len(frames) >= 20
    assert frames[0].ndim == 3 and frames[0].shape[2] == 3
    first_port = server.port

    server.kill()
    after_kill = read_until_failure(cap)
    cap.release()
    # The TCP connection is reset: buffered frames come out, then reads fail at once.
    assert after_kill["max_block_s"] < TIMEOUT_MS / 1000 + 1.5, after_kill
    assert after_kill["fail_s"] < 2 * TIMEOUT_MS / 1000, after_kill

    t0 = time.monotonic()
    server.restart()  # same port; the old connection's port may be in TIME_WAIT
    restart_s = time.monotonic() - t0
    assert server.port == first_port
    cap2, reopen_s = open_capture(server.url)
    assert cap2.isOpened(), f"cannot reopen {server.url} after restart\n{server.log()}"
    assert len(read_frames(cap2, 20)) >= 20
    cap2.release()
    print(
        f"\n[rtsp] open {open_s:.2f} s; after SIGKILL {after_kill}; restart {restart_s:.2f} s; "
        f"reopen {reopen_s:.2f} s"
    )


def test_two_clients_share_the_live_stream(rtsp_server):
    server = rtsp_server(path="shared")
    results: dict[str, dict] = {}

    def client(name: str, delay: float, seconds: float) -> None:
        time.sleep(delay)
        cap, open_s = open_capture(server.url)
        stamps = []
        t_end = time.monotonic() + seconds
        while cap.isOpened() and time.monotonic() < t_end:
            ok, _ = cap.read()
            if not ok:
                break
            stamps.append(time.monotonic())
        cap.release()
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        results[name] = {"open": open_s, "frames": len(stamps), "max_gap": max(gaps, default=0)}

    # The second client joins while the first is reading: the first must not notice (a seekable
    # file media would be rewound for everyone by the second client's PLAY).
    threads = [
        threading.Thread(target=client, args=("a", 0.0, 6.0)),
        threading.Thread(target=client, args=("b", 2.0, 3.0)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results["a"]["frames"] >= 100, results
    assert results["b"]["frames"] >= 50, results
    assert results["a"]["max_gap"] < 0.5, results
    print(f"\n[rtsp] two clients: {results}")


@pytest.mark.slow
def test_frozen_server_read_times_out_then_recovers(rtsp_server):
    server = rtsp_server(path="frozen")
    cap, _ = open_capture(server.url, FROZEN_TIMEOUT_MS)
    assert cap.isOpened()
    assert len(read_frames(cap, 20)) >= 20

    server.freeze()
    frozen = read_until_failure(cap)
    # OpenCV honours the read timeout per read, but the first timed-out read(s) still return
    # True (frames drained from the decoder): a stall shows first as reads taking ~timeout.
    assert frozen["max_block_s"] < FROZEN_TIMEOUT_MS / 1000 + 1.5, frozen
    assert frozen["fail_s"] < 4 * FROZEN_TIMEOUT_MS / 1000 + 2, frozen

    # Opening while frozen: TCP connects (the kernel accepts), the RTSP handshake gets no answer.
    cap_frozen, frozen_open_s = open_capture(server.url, FROZEN_TIMEOUT_MS)
    frozen_opened = cap_frozen.isOpened()
    cap_frozen.release()
    assert not frozen_opened

    server.thaw()
    t0 = time.monotonic()
    ok_same, _ = cap.read()  # the old capture after thaw (informational)
    old_read_s = time.monotonic() - t0
    cap.release()
    cap2, reopen_s = open_capture(server.url)
    assert cap2.isOpened(), server.log()
    assert len(read_frames(cap2, 20)) >= 20
    cap2.release()
    print(
        f"\n[rtsp] SIGSTOP: {frozen}; open while frozen gave up after {frozen_open_s:.2f} s; "
        f"old capture after SIGCONT: read ok={ok_same} in {old_read_s:.2f} s; "
        f"reopen after SIGCONT {reopen_s:.2f} s"
    )
