"""Bounded memory under source churn: streams that end, fail and reconnect over and over."""

import os
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import Collector, cleanup, free_port, start_cli, write_config

SOAK_S = float(os.environ.get("STREAMS_SOAK_S", "120"))


def short_clip(path: Path, frames: int = 12) -> Path:
    """A half-second clip, so a looping stream reopens its source twice a second."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (96, 64))
    for i in range(frames):
        image = np.full((64, 96, 3), 40, np.uint8)
        cv2.rectangle(image, (4 * i, 10), (4 * i + 30, 50), (0, 200, 255), -1)
        writer.write(image)
    writer.release()
    return path


def rss_kb_and_fds(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    return rss_kb, len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
def test_source_churn_keeps_memory_and_descriptors_bounded(tmp_path):
    clip = short_clip(tmp_path / "short.mp4")
    refused = f"rtsp://127.0.0.1:{free_port()}/nobody-listens"
    port = free_port()
    config = write_config(tmp_path / "c.yaml", [
        {"id": "looping", "url": str(clip), "loop": True},
        {"id": "refused", "url": refused},
        {"id": "refused2", "url": refused.replace("nobody", "still-nobody")},
        {"id": "garbage", "url": str(tmp_path / "garbage.mp4")},
    ], port, capture={"open_timeout_s": 1, "reconnect_initial_s": 0.05, "reconnect_max_s": 0.1})
    (tmp_path / "garbage.mp4").write_bytes(os.urandom(4096))
    collector = Collector(f"tcp://127.0.0.1:{port}", kinds=("status",))
    process = start_cli("run", str(config), "--no-live")
    samples = []
    try:
        time.sleep(10)  # warm-up: imports, model load, first allocations
        end = time.monotonic() + SOAK_S
        while time.monotonic() < end:
            assert process.poll() is None, process.output()
            samples.append(rss_kb_and_fds(process.pid))
            time.sleep(2)
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=10) == 0
        except Exception:
            print(process.output()[-3000:])
            raise
    finally:
        cleanup(process, collector)
    retries = [m for m in collector.of("status", "refused") if m["state"] == "reconnecting"]
    assert len(retries) >= SOAK_S / 0.5, "the refused stream kept reconnecting"
    third = max(1, len(samples) // 3)
    first_rss = np.median([rss for rss, _ in samples[:third]])
    last_rss = np.median([rss for rss, _ in samples[-third:]])
    fds = [fd for _, fd in samples]
    print(f"RSS {first_rss / 1024:.1f} -> {last_rss / 1024:.1f} MiB, fds {min(fds)}..{max(fds)}, "
          f"{len(retries)} reconnects")
    assert last_rss - first_rss < 20 * 1024, "RSS grew by more than 20 MiB under churn"
    assert max(fds) - min(fds) <= 8, "file descriptors leaked"
