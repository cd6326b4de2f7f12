"""Running as a systemd service (issue 11, item 13): sd_notify readiness, watchdog pings and
STOPPING over a real unix datagram socket from a real ``python -m streams run``, and the unit
checked by ``systemd-analyze verify``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, Collector, cleanup, free_port, run_cli, start_cli, write_config


class NotifySocket:
    """What systemd listens on: a unix datagram socket; ``messages`` are its datagrams, each
    a dict of KEY=VALUE lines, with the time it arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def read_until(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append((time.monotonic(), fields))
        return predicate(self)

    def with_key(self, key: str) -> list[tuple[float, dict[str, str]]]:
        return [(t, m) for t, m in self.messages if key in m]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    sock = NotifySocket(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock.path))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # WatchdogSec=1: a ping every 0.5 s
    yield sock
    sock.close()


def test_ready_watchdog_and_stopping_reach_the_notify_socket(assets, tmp_path, notify_socket):
    port = free_port()
    video = str(assets.videos["bikes.mp4"])
    config = write_config(
        tmp_path / "c.yaml", [{"id": "bikes", "url": video, "loop": True, "fps": 5}], port
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config))  # no --no-live: not a TTY, so no table anyway
    try:
        assert notify_socket.read_until(lambda s: s.with_key("READY"), 90), process.output()
        ready_s, ready = notify_socket.with_key("READY")[0]
        assert ready["READY"] == "1"
        assert "pipeline started" in process.output()  # READY comes after the run starts
        # Watchdog pings before READY (loading the engine) and keep coming after it.
        assert notify_socket.read_until(
            lambda s: sum(t > ready_s for t, _ in s.with_key("WATCHDOG")) >= 4, 10
        ), notify_socket.messages
        pings = [t for t, m in notify_socket.with_key("WATCHDOG") if t > ready_s]
        assert all(m["WATCHDOG"] == "1" for _, m in notify_socket.with_key("WATCHDOG"))
        assert max(b - a for a, b in zip(pings, pings[1:])) < 1.0  # within WatchdogSec
        assert collector.wait_for(lambda c: c.of("det", "bikes"), 30)  # it publishes
        assert notify_socket.read_until(
            lambda s: any("1/1 streams live" in m.get("STATUS", "") for _, m in s.messages), 10
        ), notify_socket.messages
        code, _ = process.drain(timeout_s=15)
        assert code == 0, process.output()
        assert notify_socket.read_until(lambda s: s.with_key("STOPPING"), 5)
        _, stopping = notify_socket.with_key("STOPPING")[0]
        assert stopping["STOPPING"] == "1" and stopping["STATUS"] == "stopping: signal"
        before_summary = process.output().split("summary:")[0]  # the last table stays
        assert "p50 ms" not in before_summary, before_summary  # not a TTY: no live table
    finally:
        cleanup(process, collector)


def test_a_config_error_is_the_services_status(tmp_path, notify_socket):
    config = write_config(tmp_path / "c.yaml", [{"id": "a", "url": "missing.mp4"}], free_port())
    result = run_cli("run", str(config))
    assert result.returncode == 2, result.stderr
    assert notify_socket.read_until(lambda s: s.with_key("STATUS"), 5)
    status = notify_socket.with_key("STATUS")[-1][1]["STATUS"]
    assert status.startswith("config error: streams[0].url: file not found"), status
    assert not notify_socket.with_key("READY")


# --- the unit -------------------------------------------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
DEPLOY_UNIT = REPO / "deploy" / "streams.service"


def _require_systemd_analyze() -> str:
    if SYSTEMD_ANALYZE is None:
        if os.environ.get("STREAMS_REQUIRE_SYSTEMD"):
            pytest.fail("STREAMS_REQUIRE_SYSTEMD is set but systemd-analyze is not installed")
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return SYSTEMD_ANALYZE


def _verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_require_systemd_analyze(), "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_unit_install_service_writes_passes_systemd_analyze_verify(tmp_path):
    result = run_cli("install-service", "--unit-dir", str(tmp_path), timeout=30)
    assert result.returncode == 0, result.stderr
    unit = tmp_path / "streams.service"
    text = unit.read_text()
    executable = Path(sys.executable).parent / "streams"
    assert f"ExecStart={executable} run /etc/streams/config.yaml" in text
    verified = _verify(unit)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr


def test_the_unit_under_deploy_passes_systemd_analyze_verify(tmp_path):
    """deploy/streams.service as checked in; only its ExecStart/ExecReload program path
    (/opt/streams/venv/bin/streams, which this machine does not have: verify checks that it
    exists) is pointed at this checkout's installed one."""
    text = DEPLOY_UNIT.read_text()
    assert "/opt/streams/venv/bin/streams" in text
    executable = str(Path(sys.executable).parent / "streams")
    unit = tmp_path / "streams.service"
    unit.write_text(text.replace("/opt/streams/venv/bin/streams", executable))
    verified = _verify(unit)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr


def test_deploy_unit_is_what_install_service_writes_for_opt_streams():
    result = run_cli(
        "install-service", "--print", "--executable", "/opt/streams/venv/bin/streams", timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == DEPLOY_UNIT.read_text()


def test_a_broken_unit_fails_verify(tmp_path):
    """The check can fail: a typo in a directive is reported."""
    unit = tmp_path / "streams.service"
    unit.write_text(
        DEPLOY_UNIT.read_text()
        .replace("Restart=", "Restrat=")
        .replace("/opt/streams/venv/bin/streams", str(Path(sys.executable).parent / "streams"))
    )
    verified = _verify(unit)
    assert "Restrat" in verified.stderr, verified.stderr


def test_install_service_refuses_to_overwrite_without_force(tmp_path):
    assert run_cli("install-service", "--unit-dir", str(tmp_path), timeout=30).returncode == 0
    again = run_cli("install-service", "--unit-dir", str(tmp_path), timeout=30)
    assert again.returncode == 2 and "--force" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr
    forced = run_cli("install-service", "--unit-dir", str(tmp_path), "--force", timeout=30)
    assert forced.returncode == 0, forced.stderr
