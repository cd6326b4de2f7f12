"""CURVE: encrypted publishing, and only authorised subscribers receive anything."""

import shutil
from pathlib import Path

import pytest

from streams.bus.publisher import Publisher
from streams.bus.subscriber import Subscriber
from streams.config import CurveConfig, PublishConfig, parse_config
from streams.errors import ConfigError
from streams.runtime.stats import PipelineStats
from tests.helpers import free_port, run_cli


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    for name in ("server", "alice", "mallory"):
        result = run_cli("keys", str(tmp_path / "keys"), "--name", name, timeout=30)
        assert result.returncode == 0, result.stderr
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(tmp_path / "keys" / "alice.key", allowed)
    return tmp_path


def receive_some(subscriber: Subscriber, publisher: Publisher, seconds: float = 3.0) -> int:
    got = 0
    for i in range(int(seconds / 0.05)):
        publisher.publish("det/cam/", {"seq": i})
        if subscriber.receive(0.05) is not None:
            got += 1
    return got


def test_only_authorised_clients_receive(keys: Path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    curve = CurveConfig(str(keys / "keys" / "server.key_secret"), str(keys / "allowed"))
    publisher = Publisher(
        PublishConfig(endpoint=endpoint, curve=curve, join_grace_ms=0), PipelineStats()
    )
    server_public = str(keys / "keys" / "server.key")
    alice = Subscriber(
        [endpoint],
        curve_server_key=server_public,
        curve_client_key=str(keys / "keys" / "alice.key_secret"),
    )
    mallory = Subscriber(
        [endpoint],
        curve_server_key=server_public,
        curve_client_key=str(keys / "keys" / "mallory.key_secret"),
    )
    plain = Subscriber([endpoint])
    try:
        assert receive_some(alice, publisher) > 0
        assert receive_some(mallory, publisher, 1.0) == 0
        assert receive_some(plain, publisher, 1.0) == 0
    finally:
        for sub in (alice, mallory, plain):
            sub.close()
        publisher.close()


def test_curve_config_checks_files(keys: Path):
    base = {"streams": [{"id": "a", "url": "rtsp://h/x"}]}
    with pytest.raises(ConfigError, match=r"publish\.curve\.server_secret_key: file not found"):
        parse_config(
            {
                **base,
                "publish": {
                    "curve": {"server_secret_key": "nope", "authorized_clients": str(keys)}
                },
            }
        )
    with pytest.raises(ConfigError, match=r"publish\.curve\.authorized_clients: not a directory"):
        parse_config(
            {
                **base,
                "publish": {
                    "curve": {
                        "server_secret_key": str(keys / "keys" / "server.key_secret"),
                        "authorized_clients": str(keys / "nope"),
                    }
                },
            }
        )
    config = parse_config(
        {
            **base,
            "publish": {
                "curve": {
                    "server_secret_key": str(keys / "keys" / "server.key_secret"),
                    "authorized_clients": str(keys / "allowed"),
                }
            },
        }
    )
    assert config.publish.curve.authorized_clients == str(keys / "allowed")
