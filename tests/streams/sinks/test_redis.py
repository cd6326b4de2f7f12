"""The Redis Streams bridge against a real redis-server, fed by the pipeline's Publisher."""

from __future__ import annotations

import logging
import time

import orjson
import pytest
import redis

from tests.helpers import wait_until
from tests.streams.sinks.support import (
    Bus,
    Feeder,
    check_nothing_lost_or_waited,
    make_bridge,
    ride_out_a_restart,
    wait_state,
)


@pytest.fixture
def bus():
    instance = Bus()
    yield instance
    instance.close()


def test_xadd_per_stream_and_kind_trimmed_and_read_by_a_consumer_group(broker, bus):
    server = broker("redis")
    client = redis.Redis.from_url(server.url)
    bridge = make_bridge(bus, {"type": "redis", "url": server.url, "maxlen": 100})
    try:
        assert wait_state(bridge, "connected")
        client.xgroup_create("streams:det:cam1", "dashboards", id="$", mkstream=True)
        for seq in range(1000):
            bus.det("cam1", seq)
            if seq % 100 == 99:
                time.sleep(0.02)  # within the publisher's sndhwm (1000) on a busy machine
        bus.det("cam2", 0)
        bus.publisher.publish("stats/", {"v": 1, "type": "stats", "streams": []})
        bus.publisher.publish("status/cam1/", {"v": 1, "type": "status", "state": "live"})
        assert wait_until(lambda: bridge.figures()["sent"] == 1003, 10), str(bridge.figures())
    finally:
        bridge.stop()
    assert set(client.keys()) == {
        b"streams:det:cam1",
        b"streams:det:cam2",
        b"streams:stats",
        b"streams:status:cam1",
    }
    length = client.xlen("streams:det:cam1")
    assert 100 <= length < 1000, f"MAXLEN ~ 100 trims (approximately): {length}"
    last_id, fields = client.xrevrange("streams:det:cam1", count=1)[0]
    assert fields[b"kind"] == b"det" and fields[b"stream"] == b"cam1"
    assert orjson.loads(fields[b"data"])["seq"] == 999
    assert b"stream" not in client.xrange("streams:stats")[0][1]  # stats belong to no stream
    # The group created before the first message got every entry the trimming left.
    read = client.xreadgroup("dashboards", "worker-1", {"streams:det:cam1": ">"}, count=2000)
    entries = read[0][1]
    seqs = [orjson.loads(f[b"data"])["seq"] for _, f in entries]
    assert seqs == sorted(seqs) and seqs[-1] == 999
    assert client.xack("streams:det:cam1", "dashboards", *[i for i, _ in entries]) == len(entries)


def test_server_restarted_mid_run(broker, bus, progress):
    server = broker("redis")
    bridge = make_bridge(
        bus, {"type": "redis", "url": server.url, "queue_size": 200, "reconnect_max_s": 0.5}
    )
    feeder = Feeder(bus, rate=400).start()
    try:
        # No persistence: the server that starts again is a fresh, empty one on the same port.
        ride_out_a_restart(bridge, server, queue_size=200)
        client = redis.Redis.from_url(server.url)
        assert wait_until(lambda: client.xlen("streams:det:cam1") > 250, 10)
    finally:
        feeder.stop()
        bridge.stop()
    figures = bridge.figures()
    progress(f"{figures}, slowest publish {feeder.slowest_s * 1000:.2f} ms")
    seqs = [orjson.loads(f[b"data"])["seq"] for _, f in client.xrange("streams:det:cam1")]
    assert seqs == sorted(seqs), "what waited went first, then the rest, in order"
    check_nothing_lost_or_waited(bridge, bus, feeder)


def test_wrong_password_is_one_error_line_without_the_secret(broker, bus, caplog):
    server = broker("redis", password="r3dis-secret")
    caplog.set_level(logging.DEBUG)
    bridge = make_bridge(
        bus,
        {
            "type": "redis",
            "url": f"redis://:wrong-one@127.0.0.1:{server.port}/0",
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.2,
        },
    )
    try:
        assert wait_state(bridge, "reconnecting")
        assert wait_until(lambda: bridge.figures()["reconnects"] >= 1, 5)
    finally:
        bridge.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"sink redis (redis://***@127.0.0.1:{server.port}/0): ")
    assert "credentials" in errors[0]
    assert "wrong-one" not in caplog.text and "r3dis-secret" not in caplog.text


def test_kinds_forwards_only_those(broker, bus):
    server = broker("redis")
    bridge = make_bridge(bus, {"type": "redis", "url": server.url, "kinds": ["status"]})
    try:
        assert wait_state(bridge, "connected")
        bus.det("cam1", 0)
        bus.publisher.publish("status/cam1/", {"v": 1, "type": "status", "state": "live"})
        bus.publisher.publish("stats/", {"v": 1, "type": "stats", "streams": []})
        assert wait_until(lambda: bridge.figures()["sent"] == 1, 5)
        time.sleep(0.3)
    finally:
        bridge.stop()
    assert redis.Redis.from_url(server.url).keys() == [b"streams:status:cam1"]
    assert bridge.figures()["received"] == 1, "filtered by the SUB socket, not read at all"
