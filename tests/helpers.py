"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from streams.bus.subscriber import Subscriber
from tests.support.rtsp import free_port  # noqa: F401  (one helper for every test)

REPO = Path(__file__).resolve().parents[1]


def write_config(path: Path, streams: list[dict], port: int, **sections) -> Path:
    """A config for tests: CPU backend, given streams, publishing on ``port``."""
    raw = {
        "streams": streams,
        "engine": {"backend": "onnxruntime", "max_batch": 4, **sections.pop("engine", {})},
        "publish": {"endpoint": f"tcp://127.0.0.1:{port}", "stats_interval_s": 0.5},
        "metrics": {"port": 0},
    }
    raw.update(sections)
    path.write_text(yaml.safe_dump(raw))
    return path


class Collector:
    """A real SUB socket draining messages on a thread until stopped."""

    def __init__(
        self,
        endpoint: str,
        stream: str | None = None,
        kinds=("det", "status", "stats"),
        rcvhwm: int = 100_000,
    ) -> None:
        self.messages: list[tuple[bytes, dict]] = []
        self._sub = Subscriber([endpoint], stream=stream, kinds=kinds, rcvhwm=rcvhwm)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        time.sleep(0.3)  # PUB/SUB slow joiner: let the subscription reach the publisher

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self._sub.receive(0.1)
            if item is not None:
                self.messages.append(item)

    def of(self, kind: str, stream: str | None = None) -> list[dict]:
        return [
            m
            for _, m in list(self.messages)
            if m["type"] == kind and (stream is None or m.get("stream") == stream)
        ]

    def wait_for(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sub.close()


def run_cli(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


class CliProcess(subprocess.Popen):
    """A background ``python -m streams`` whose output goes to a file (a pipe nobody reads
    would fill up and block the process's logging)."""

    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def drain(self, timeout_s: float = 10.0) -> tuple[int, float]:
        """SIGTERM, then wait: (exit code, seconds the drain took)."""
        began = time.monotonic()
        self.send_signal(signal.SIGTERM)
        code = self.wait(timeout=timeout_s)
        return code, time.monotonic() - began


def start_cli(*args: str) -> CliProcess:
    # Not a context manager: the file must outlive this call (the process writes to it).
    log = tempfile.NamedTemporaryFile("w", prefix="streams-cli-", suffix=".log", delete=False)  # noqa: SIM115
    process = CliProcess([sys.executable, "-m", "streams", *args], cwd=REPO,
                         stdout=log, stderr=subprocess.STDOUT, text=True)
    process.log_path = Path(log.name)
    log.close()
    return process


def cleanup(process: subprocess.Popen, *collectors: Collector) -> None:
    """Kill a background CLI that is still running; close the test's subscribers."""
    if process.poll() is None:
        process.kill()
        process.wait(5)
    for collector in collectors:
        collector.close()


def iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
