"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
import zmq
from zmq.utils.monitor import recv_monitor_message

from streams.bench.measure import child_pids
from streams.bus.messages import KINDS
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
        "http": {"port": 0},
    }
    raw.update(sections)
    path.write_text(yaml.safe_dump(raw))
    return path


class Collector:
    """A real SUB socket draining messages on a thread until stopped.

    The constructor returns once the subscription is where it needs to be, told by the
    socket's own monitor events, not by a fixed sleep:

    * a publisher already listens (ZMTP handshake succeeded): the subscription is on its way;
      the one hop nobody can observe from a SUB socket (the PUB's I/O thread handing it to
      the PUB) takes well under a millisecond, and ``JOIN_SETTLE_S`` covers it;
    * nobody listens yet (connection refused, the socket retries every 50 ms): return at
      once. A publisher that binds later gets the subscription when the SUB reconnects,
      within its ``publish.join_grace_ms`` (300 ms by default) before it sends anything.

    A test that must know a message can get through waits for one: ``wait_for``. Once the
    publisher's process has exited, ``finish`` waits until its connection closes, so every
    message it sent is in ``messages`` (its last ones, each stream's ``ended``, included).
    """

    JOIN_SETTLE_S = 0.05
    _EVENTS = (
        zmq.EVENT_HANDSHAKE_SUCCEEDED
        | zmq.EVENT_CONNECT_RETRIED
        | zmq.EVENT_DISCONNECTED
        | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    )

    def __init__(
        self,
        endpoint: str,
        stream: str | None = None,
        kinds=KINDS,
        rcvhwm: int = 100_000,
        ready_timeout_s: float = 10.0,
    ) -> None:
        self.messages: list[tuple[bytes, dict]] = []
        self.endpoint = endpoint
        # Subscriber's filters and decoding, connected on the thread below, which owns the
        # socket from here on (ZeroMQ sockets are not thread-safe).
        self._sub = Subscriber([], stream=stream, kinds=kinds, rcvhwm=rcvhwm)
        self._stop = threading.Event()
        self.connected = threading.Event()  # a ZMTP handshake with the publisher succeeded
        self.disconnected = threading.Event()  # and that connection closed since
        self._known = threading.Event()  # connected, or refused (nobody listens yet)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._known.wait(ready_timeout_s):
            self.close()
            raise AssertionError(
                f"{endpoint}: neither connected nor refused within {ready_timeout_s} s"
            )
        if self.connected.is_set():
            time.sleep(self.JOIN_SETTLE_S)

    def _run(self) -> None:
        sock = self._sub._socket  # the monitor must watch this very socket
        monitor = sock.get_monitor_socket(self._EVENTS)
        sock.connect(self.endpoint)  # after the monitor: no event is missed
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(100))
                if monitor in ready:
                    event = recv_monitor_message(monitor)["event"]
                    if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                        self.disconnected.clear()
                        self.connected.set()
                    elif event == zmq.EVENT_DISCONNECTED:
                        self.disconnected.set()
                    self._known.set()
                if sock in ready:
                    self._drain()
            self._drain()  # what arrived before the stop (all of it, after a disconnect)
        finally:
            sock.disable_monitor()
            monitor.close(0)

    def _drain(self) -> None:
        while (item := self._sub.receive(0)) is not None:
            self.messages.append(item)

    def of(self, kind: str, stream: str | None = None) -> list[dict]:
        return [
            m
            for _, m in list(self.messages)
            if m["type"] == kind and (stream is None or m.get("stream") == stream)
        ]

    def wait_for(self, predicate, timeout_s: float) -> bool:
        """Poll ``predicate(self)`` until it holds (True) or ``timeout_s`` passes (False)."""
        return wait_until(lambda: predicate(self), timeout_s)

    def finish(self, timeout_s: float = 5.0) -> None:
        """Close, once the publisher (whose process has exited) has closed its connection:
        ZeroMQ hands over a connection's messages before it reports the disconnect."""
        if self.connected.is_set():
            self.disconnected.wait(timeout_s)
        self.close()

    def close(self) -> None:
        """Stop now (the publisher may still be running): what arrived so far is kept."""
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


def start_cli(
    *args: str, env: dict[str, str | None] | None = None, new_group: bool = False
) -> CliProcess:
    """``python -m streams ARGS`` in the background; ``env``: variables added to ours (a
    None value removes that one); ``new_group``: in a process group of its own (with its
    children), as a terminal's foreground job is, so that a signal can reach them all."""
    # Not a context manager: the file must outlive this call (the process writes to it).
    log = tempfile.NamedTemporaryFile("w", prefix="streams-cli-", suffix=".log", delete=False)  # noqa: SIM115
    process = CliProcess(
        [sys.executable, "-m", "streams", *args],
        env=None
        if env is None
        else {k: v for k, v in {**os.environ, **env}.items() if v is not None},
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=new_group,
    )
    process.log_path = Path(log.name)
    log.close()
    return process


def tcp_connected(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds an established TCP connection to local ``port``."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        tables = [Path(f"/proc/{pid}/net/{name}").read_text() for name in ("tcp", "tcp6")]
    except OSError:
        return False  # the process is gone
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            remote_port, state, inode = int(fields[2].rsplit(":", 1)[1], 16), fields[3], fields[9]
            if remote_port == port and state == "01" and inode in inodes:  # 01: ESTABLISHED
                return True
    return False


def wait_until(predicate, timeout_s: float, interval_s: float = 0.02) -> bool:
    """Poll ``predicate()`` until it holds (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def cleanup(process: subprocess.Popen, *collectors: Collector) -> None:
    """Kill a background CLI that is still running; then, the publisher gone, the test's
    subscribers take its last messages and close."""
    if process.poll() is None:
        process.kill()
        process.wait(5)
    for collector in collectors:
        collector.finish()


def iou(a, b) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def spawn_workers(pid: int) -> list[int]:
    """The live worker processes of ``pid``: its ``spawn`` children (``spawn_main`` on their
    command line; spawn also starts a resource tracker, which is left out)."""
    workers = []
    for child in child_pids(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(child)
        except OSError:
            continue  # it exited between the listing and this read
    return workers
