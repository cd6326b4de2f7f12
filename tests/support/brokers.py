"""Real message brokers on loopback for the sink tests: Mosquitto, redis-server, nats-server
(Debian packages: tests/support/install_broker_deps.sh).

Each broker runs on a free port with a config of its own in a temp directory, and can be
killed (SIGKILL: a crash, no goodbye to clients) and restarted on the same port. Tests skip
where a binary is missing, unless ``STREAMS_REQUIRE_BROKERS`` is set (CI), then they fail.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.rtsp import free_port

BINARIES = {"mqtt": "mosquitto", "redis": "redis-server", "nats": "nats-server"}
SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])


def binary(kind: str) -> str:
    """The broker's executable, or skip (fail under STREAMS_REQUIRE_BROKERS)."""
    name = BINARIES[kind]
    path = shutil.which(name, path=SEARCH)
    if path is None:
        reason = f"{name} is not installed (bash tests/support/install_broker_deps.sh)"
        if os.environ.get("STREAMS_REQUIRE_BROKERS"):
            pytest.fail(f"STREAMS_REQUIRE_BROKERS is set: {reason}")
        pytest.skip(reason)
    return path


class Broker:
    """One broker process; ``url`` is known before it starts."""

    def __init__(
        self, kind: str, directory: Path, password: str | None = None, tls: bool = False
    ) -> None:
        self.kind = kind
        self.tls = tls  # mqtt only: a TLS listener with a self-signed cert for 127.0.0.1
        self.directory = directory
        self.port = free_port()
        self.password = password  # user "streams" with this password, else anonymous
        self.process: subprocess.Popen | None = None
        self.log = directory / f"{kind}.log"
        self._binary = binary(kind)

    @property
    def url(self) -> str:
        scheme = {"mqtt": "mqtts" if self.tls else "mqtt", "redis": "redis", "nats": "nats"}[
            self.kind
        ]
        return f"{scheme}://127.0.0.1:{self.port}" + ("/0" if self.kind == "redis" else "")

    def _command(self) -> list[str]:
        d = self.directory
        if self.kind == "mqtt":
            conf = d / "mosquitto.conf"
            # Started as root, mosquitto drops to user "mosquitto", who cannot read the temp
            # dir: stay who we are.
            lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1"]
            lines.append("persistence false")
            if self.tls:
                lines += [f"certfile {self.cert}", f"keyfile {d / 'server.key'}"]
            if self.password is None:
                lines.append("allow_anonymous true")
            else:
                passwords = d / "passwd"
                passwords.write_text("")
                subprocess.run(
                    [
                        shutil.which("mosquitto_passwd", path=SEARCH) or "mosquitto_passwd",
                        "-b",
                        str(passwords),
                        "streams",
                        self.password,
                    ],
                    check=True,
                    capture_output=True,
                )
                lines += ["allow_anonymous false", f"password_file {passwords}"]
            conf.write_text("\n".join(lines) + "\n")
            return [self._binary, "-c", str(conf)]
        if self.kind == "redis":
            command = [self._binary, "--port", str(self.port), "--bind", "127.0.0.1"]
            command += ["--save", "", "--appendonly", "no", "--dir", str(d)]
            if self.password is not None:
                command += ["--requirepass", self.password]
            return command
        store = d / "jetstream"
        command = [self._binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store)]
        if self.password is not None:
            command += ["--user", "streams", "--pass", self.password]
        return command

    @property
    def cert(self) -> Path:
        """The self-signed certificate (its own CA) for IP 127.0.0.1, made on first use."""
        cert = self.directory / "server.pem"
        if not cert.exists():
            openssl = shutil.which("openssl")
            if openssl is None:
                pytest.skip("openssl is not installed (needed to make a test certificate)")
            subprocess.run(
                [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                 "-keyout", str(self.directory / "server.key"), "-out", str(cert)],
                check=True,
                capture_output=True,
            )  # fmt: skip
        return cert

    def start(self, timeout_s: float = 10.0) -> Broker:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self._command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} broker exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.kind} broker did not listen on {self.port} in {timeout_s} s")

    def kill(self) -> None:
        """SIGKILL, as a crash: clients see the connection drop with no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


@pytest.fixture
def broker(tmp_path):
    """``broker(kind, password=None, start=True, tls=False)``: a Broker, stopped after the
    test."""
    started: list[Broker] = []

    def make(kind: str, password: str | None = None, start: bool = True, tls: bool = False):
        directory = tmp_path / f"{kind}-{len(started)}"
        directory.mkdir()
        instance = Broker(kind, directory, password, tls)
        started.append(instance)
        return instance.start() if start else instance

    yield make
    for instance in started:
        instance.stop()
