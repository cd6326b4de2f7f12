"""The MQTT bridge against a real Mosquitto on loopback, fed by the pipeline's real Publisher."""

from __future__ import annotations

import logging
import time

import orjson
import pytest

from streams.config import parse_config
from tests.helpers import wait_until
from tests.streams.sinks.support import Bus, Feeder, MqttReader, make_bridge, wait_state


@pytest.fixture
def bus():
    instance = Bus()
    yield instance
    instance.close()


def test_topics_qos_retain_and_availability(broker, bus):
    mosquitto = broker("mqtt")
    reader = MqttReader(mosquitto.port)
    bridge = make_bridge(bus, {"type": "mqtt", "url": mosquitto.url, "prefix": "home/cams"})
    try:
        assert wait_state(bridge, "connected")
        for seq in range(50):
            bus.det("cam1", seq)
        bus.publisher.publish("status/cam1/", {"v": 1, "type": "status", "state": "live"})
        bus.publisher.publish("stats/", {"v": 1, "type": "stats", "streams": []})
        bus.publisher.publish("snapshot/cam1/", {"v": 1, "type": "snapshot", "path": "/x.jpg"})
        assert wait_until(lambda: len(reader.on("home/cams/det/cam1")) == 50, 10)
        assert reader.seqs("home/cams/det/cam1") == list(range(50))  # in order
        assert wait_until(lambda: reader.on("home/cams/snapshot/cam1"), 5)  # a later kind too
        assert reader.on("home/cams/stats")
        assert reader.on("home/cams/availability")[-1] == b"online"
    finally:
        reader.close()
    # A subscriber that comes later gets what is retained: status, stats, availability; no det.
    late = MqttReader(mosquitto.port)
    try:
        assert wait_until(lambda: late.on("home/cams/status/cam1"), 5)
        retained = {t for t, _, retain in late.messages if retain}
        assert {"home/cams/status/cam1", "home/cams/stats", "home/cams/availability"} <= retained
        assert not late.on("home/cams/det/cam1"), "det messages are not retained"
        bridge.stop()
        assert wait_until(lambda: late.on("home/cams/availability")[-1:] == [b"offline"], 5)
    finally:
        late.close()
        bridge.stop()
    figures = bridge.figures()
    assert figures["sent"] == figures["received"] == 53
    assert sum(figures["dropped"].values()) == 0


def test_broker_killed_and_restarted_mid_run(broker, bus, progress):
    """Down: the buffer fills to its bound, then the oldest go and are counted; the publisher
    never waits. Back: the bridge reconnects by itself and what waited goes out first."""
    mosquitto = broker("mqtt")
    bridge = make_bridge(
        bus,
        {"type": "mqtt", "url": mosquitto.url, "queue_size": 300, "reconnect_max_s": 0.5},
    )
    feeder = Feeder(bus, rate=500).start()
    try:
        assert wait_state(bridge, "connected")
        assert wait_until(lambda: bridge.figures()["sent"] > 200, 10)
        mosquitto.kill()
        assert wait_state(bridge, "reconnecting", 10)
        assert wait_until(lambda: bridge.figures()["dropped"]["queue_full"] > 200, 10)
        depths = []
        for _ in range(10):
            depths.append(bridge.figures()["queue_depth"])
            time.sleep(0.05)
        assert max(depths) <= 300, "the buffer never holds more than its bound"
        assert min(depths) >= 290, "full while the broker is away"
        progress(f"down: {bridge.figures()}")
        mosquitto.start()
        reader = MqttReader(mosquitto.port, topics=("streams/det/cam1",))
        try:
            assert wait_state(bridge, "connected", 10)
            assert wait_until(lambda: len(reader.on("streams/det/cam1")) > 300, 10)
            seqs = reader.seqs("streams/det/cam1")
        finally:
            reader.close()
    finally:
        feeder.stop()
        bridge.stop()
    figures = bridge.figures()
    progress(f"after: {figures}, slowest publish {feeder.slowest_s * 1000:.2f} ms")
    assert figures["reconnects"] >= 1
    never_sent = figures["dropped"]["queue_full"] + figures["dropped"]["client_queue"]
    assert figures["received"] == figures["sent"] + never_sent + figures["queue_depth"]
    assert figures["dropped"]["lost_in_flight"] <= figures["sent"]
    assert seqs == sorted(seqs), "after the restart, in order"
    assert bus.stats.publish_dropped == 0
    assert feeder.slowest_s < 0.05, "the pipeline's publish never waited for the broker"


def test_unreachable_at_start_then_the_broker_comes(broker, bus, caplog):
    mosquitto = broker("mqtt", start=False)  # its port is known, nothing listens yet
    caplog.set_level(logging.INFO)
    bridge = make_bridge(bus, {"type": "mqtt", "url": mosquitto.url, "reconnect_max_s": 0.5})
    try:
        assert wait_state(bridge, "reconnecting", 5)
        for seq in range(20):
            bus.det("cam1", seq)
        assert wait_until(lambda: bridge.figures()["queue_depth"] == 20, 5)
        assert "sink mqtt (mqtt://127.0.0.1:" in caplog.text
        assert "Connection refused" in bridge.figures()["error"]
        mosquitto.start()
        reader = MqttReader(mosquitto.port, topics=("streams/det/cam1",))
        try:
            bus.det("cam1", 20)
            assert wait_until(lambda: len(reader.on("streams/det/cam1")) >= 1, 10)
        finally:
            reader.close()
        assert wait_until(lambda: bridge.figures()["sent"] == 21, 5)
    finally:
        bridge.stop()


def test_credentials_from_the_environment_and_wrong_ones(broker, bus, caplog, tmp_path):
    mosquitto = broker("mqtt", password="s3cret-pass")
    raw = {
        "streams": [{"id": "a", "url": "sample:bikes.mp4"}],
        "sinks": [
            {
                "type": "mqtt",
                "url": mosquitto.url,
                "username": "${MQTT_USER}",
                "password": "${MQTT_PASSWORD}",
                "reconnect_max_s": 0.5,
            }
        ],
    }
    caplog.set_level(logging.DEBUG)
    good = parse_config(raw, environ={"MQTT_USER": "streams", "MQTT_PASSWORD": "s3cret-pass"})
    bad = parse_config(raw, environ={"MQTT_USER": "streams", "MQTT_PASSWORD": "wrong-pass"})
    assert "s3cret" not in repr(good) and "wrong-pass" not in repr(bad)
    from streams.sinks.base import Bridge

    reader = MqttReader(
        mosquitto.port, topics=("streams/det/#",), username="streams", password="s3cret-pass"
    )
    bridges = [Bridge(good.sinks[0], bus.endpoint), Bridge(bad.sinks[0], bus.endpoint)]
    try:
        for bridge in bridges:
            bridge.start()
        assert wait_state(bridges[0], "connected")
        assert wait_state(bridges[1], "reconnecting")
        time.sleep(0.2)
        bus.det("cam1", 0)
        assert wait_until(lambda: reader.on("streams/det/cam1"), 5)
    finally:
        reader.close()
        for bridge in bridges:
            bridge.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # once, not once per retry
    line = errors[0].getMessage()
    assert line.startswith(f"sink mqtt ({mosquitto.url}): the broker refused the credentials")
    assert "\n" not in line
    assert "s3cret-pass" not in caplog.text and "wrong-pass" not in caplog.text
    assert "credentials" in bridges[1].figures()["error"]


def test_home_assistant_discovery_of_zone_and_line_counters(broker, bus):
    mosquitto = broker("mqtt")
    reader = MqttReader(
        mosquitto.port, topics=("homeassistant/#", "streams/zone/#", "streams/line/#")
    )
    bridge = make_bridge(bus, {"type": "mqtt", "url": mosquitto.url})
    stats = {
        "v": 1,
        "type": "stats",
        "streams": [
            {
                "stream": "street",
                "zones": [
                    {
                        "zone": "front door",
                        "occupancy": 2,
                        "entered": 7,
                        "exited": 5,
                        "dwell_alerts": 1,
                        "by_class": [],
                    }
                ],
                "lines": [{"line": "road", "in": 12, "out": 9, "by_class": []}],
            },
            {"stream": "plain"},
        ],
    }
    try:
        assert wait_state(bridge, "connected")
        bus.publisher.publish("stats/", stats)
        stats["streams"][0]["zones"][0]["occupancy"] = 3
        bus.publisher.publish("stats/", stats)
        assert wait_until(lambda: len(reader.on("streams/zone/street/front_door")) == 2, 5)
    finally:
        bridge.stop()
        reader.close()
    configs = {t: orjson.loads(p) for t, p, _ in reader.messages if t.startswith("homeassistant/")}
    occupancy = configs["homeassistant/sensor/streams/street_zone_front_door_occupancy/config"]
    assert occupancy["state_topic"] == "streams/zone/street/front_door"
    assert occupancy["state_class"] == "measurement"
    assert occupancy["availability_topic"] == "streams/availability"
    assert occupancy["device"]["identifiers"] == ["streams_street"]
    entered = configs["homeassistant/sensor/streams/street_zone_front_door_entered/config"]
    assert entered["state_class"] == "total_increasing"
    assert "homeassistant/sensor/streams/street_line_road_in/config" in configs
    assert len(configs) == 6, "announced once per connection, not per stats message"
    states = [orjson.loads(p) for p in reader.on("streams/zone/street/front_door")]
    assert states[-1] == {"occupancy": 3, "entered": 7, "exited": 5, "dwell_alerts": 1}
    assert orjson.loads(reader.on("streams/line/street/road")[-1]) == {"in": 12, "out": 9}


def test_tls_with_the_brokers_ca(broker, bus, tmp_path):
    mosquitto = broker("mqtt", tls=True, password="tls-pass")
    bridge = make_bridge(
        bus,
        {
            "type": "mqtt",
            "url": f"mqtts://streams:tls-pass@127.0.0.1:{mosquitto.port}",
            "ca_file": str(mosquitto.cert),
        },
    )
    untrusted = make_bridge(
        bus, {"type": "mqtt", "url": mosquitto.url, "name": "untrusted", "reconnect_max_s": 1}
    )
    try:
        assert wait_state(bridge, "connected"), bridge.figures()
        assert wait_state(untrusted, "reconnecting")
        assert "certificate verify failed" in untrusted.figures()["error"]
        bus.det("cam1", 0)
        assert wait_until(lambda: bridge.figures()["sent"] == 1, 5)
    finally:
        bridge.stop()
        untrusted.stop()
