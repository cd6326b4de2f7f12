"""``sinks:`` in the config: the documented shape, its defaults, and errors naming the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streams.config import parse_config
from streams.errors import ConfigError
from streams.sinks.buffer import Buffer
from tests.helpers import REPO

STREAMS = [{"id": "a", "url": "sample:bikes.mp4"}]
SHAPE = [
    {"type": "mqtt", "url": "mqtt://host:1883", "prefix": "streams"},
    {"type": "redis", "url": "redis://host:6379/0"},
    {"type": "nats", "url": "nats://host:4222"},
]


def sinks(raw, environ=None):
    return parse_config({"streams": STREAMS, "sinks": raw}, environ=environ or {}).sinks


def test_the_documented_shape_and_defaults():
    mqtt, redis, nats = sinks(SHAPE)
    assert [s.name for s in (mqtt, redis, nats)] == ["mqtt", "redis", "nats"]
    assert mqtt.qos_of("det") == 0 and mqtt.qos_of("status") == 1 and mqtt.qos_of("event") == 1
    assert mqtt.retain_of("status") and mqtt.retain_of("stats") and not mqtt.retain_of("det")
    assert mqtt.qos_of("snapshot") == 0 and not mqtt.retain_of("clip"), "later kinds: defaults"
    assert mqtt.kinds is None and mqtt.queue_size == 10_000
    assert redis.maxlen == 10_000 and nats.storage == "file"
    two = sinks([SHAPE[0], {**SHAPE[0], "qos": {"det": 1}, "retain": {"event": True}}])
    assert [s.name for s in two] == ["mqtt-0", "mqtt-1"]
    assert two[1].qos_of("det") == 1 and two[1].retain_of("event")
    assert sinks(None) == () and parse_config({"streams": STREAMS}).sinks == ()


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (
            [SHAPE[0], {"type": "redis", "url": "redis://:6379"}],
            "sinks[1].url: 'redis://:6379' has no host",
        ),
        (
            [{"type": "kafka", "url": "x"}],
            "sinks[0].type: expected one of mqtt, redis, nats, got str 'kafka'",
        ),
        ([{"url": "mqtt://h"}], "sinks[0].type: missing (required)"),
        ([{"type": "mqtt"}], "sinks[0].url: missing (required)"),
        (
            [{"type": "mqtt", "url": "redis://h:1"}],
            "sinks[0].url: 'redis://h:1': type mqtt takes mqtt://",
        ),
        (
            [{"type": "nats", "url": "nats://h:4222/x"}],
            "sinks[0].url: 'nats://h:4222/x': expected no path",
        ),
        ([{"type": "redis", "url": "redis://h:6379/db"}], "the path is the database number"),
        (
            [{"type": "redis", "url": "redis://h:70000"}],
            "sinks[0].url: 'redis://h:70000' has a bad port",
        ),
        (
            [{"type": "redis", "url": "redis://h", "qos": {"det": 1}}],
            "sinks[0].qos: unknown key; expected one of",
        ),
        (
            [{"type": "mqtt", "url": "mqtt://h", "qos": {"det": 3}}],
            "sinks[0].qos.det: 3 is out of range [0, 2]",
        ),
        (
            [{"type": "mqtt", "url": "mqtt://h", "retain": {"Det!": True}}],
            "sinks[0].retain.Det!: expected a message kind",
        ),
        (
            [{"type": "mqtt", "url": "mqtt://h", "kinds": ["det", 4]}],
            "sinks[0].kinds[1]: expected a message kind",
        ),
        (
            [{"type": "mqtt", "url": "mqtt://h", "prefix": "a/+"}],
            "sinks[0].prefix: expected letters",
        ),
        (
            [{"type": "nats", "url": "nats://h", "prefix": "a/b"}],
            "sinks[0].prefix: 'a/b': '/' separates MQTT",
        ),
        (
            [{"type": "mqtt", "url": "mqtt://h", "queue_size": 0}],
            "sinks[0].queue_size: 0 is out of range",
        ),
        (
            [{"type": "mqtt", "url": "mqtt://h", "ca_file": "/nonexistent.pem"}],
            "sinks[0].ca_file: file not found",
        ),
        (
            [SHAPE[0], {**SHAPE[0], "name": "mqtt-0"}, {**SHAPE[0], "name": "mqtt-0"}],
            "sinks[1].name: 'mqtt-0' is also sinks[0]'s name",
        ),
        ("mqtt://h", "sinks: expected a list, got str"),
        (
            [{"type": "mqtt", "url": "mqtt://u:${NOPE}@h"}],
            "sinks[0].url: environment variable ${NOPE} is not set",
        ),
    ],
)
def test_errors_name_the_key(raw, error):
    with pytest.raises(ConfigError) as info:
        sinks(raw)
    assert error in str(info.value)


def test_credentials_never_in_errors_or_reprs():
    with pytest.raises(ConfigError) as info:
        sinks([{"type": "mqtt", "url": "mqtt://user:hunter2@:1883"}])
    assert "hunter2" not in str(info.value) and "***@" in str(info.value)
    (sink,) = sinks(
        [{"type": "mqtt", "url": "mqtt://u:${PW}@h:1883", "password": "${PW}"}], {"PW": "hunter2"}
    )
    assert (
        sink.password == "hunter2" and "hunter2" not in repr(sink) and "hunter2" not in sink.label
    )


def test_curve_and_sinks_together_are_refused(tmp_path):
    (tmp_path / "s.key_secret").write_text("x")
    curve = {
        "server_secret_key": str(tmp_path / "s.key_secret"),
        "authorized_clients": str(tmp_path),
    }
    with pytest.raises(ConfigError, match=r"^sinks: publish.curve is set"):
        parse_config({"streams": STREAMS, "publish": {"curve": curve}, "sinks": SHAPE})


def test_loading_a_config_with_sinks_imports_no_broker_client():
    code = (
        "import sys; from streams.config import parse_config;"
        f"parse_config({{'streams': {STREAMS!r}, 'sinks': {SHAPE!r}}});"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('paho', 'redis', 'nats', 'zmq', 'cv2', 'onnxruntime', 'prometheus_client')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_buffer_keeps_the_newest_within_its_bound_and_counts_the_rest():
    buffer: Buffer[int] = Buffer(5)
    buffer.put_many(list(range(8)))
    assert len(buffer) == 5 and buffer.dropped == 3
    batch = buffer.take(3, 0)
    assert batch == [3, 4, 5]
    buffer.put_many([8, 9])
    buffer.put_back(batch)  # a failed send: back to the front, as far as the bound allows
    assert buffer.dropped == 5 and buffer.take(10, 0) == [5, 6, 7, 8, 9]  # the newest
    assert buffer.take(1, 0.01) == []
