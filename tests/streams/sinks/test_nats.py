"""The NATS JetStream bridge against a real ``nats-server -js``, fed by the Publisher."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import pytest

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


def jetstream(url: str, job, user=None, password=None):
    """Run ``job(js)`` against the server with a fresh nats-py connection."""
    import nats

    async def main():
        options = {"user": user, "password": password} if user else {}
        nc = await nats.connect(url, **options)
        try:
            return await job(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(main())


def fetch_all(url: str, subject: str, durable: str = "reader") -> list[dict]:
    """Every message of ``subject`` through a durable pull consumer (consumer-group style)."""

    async def job(js):
        sub = await js.pull_subscribe(subject, durable=durable)
        out = []
        while True:
            try:
                batch = await sub.fetch(500, timeout=1)
            except Exception:  # nats.errors.TimeoutError: nothing left
                return out
            for m in batch:
                out.append(orjson.loads(m.data))
                await m.ack()

    return jetstream(url, job)


def test_subjects_per_stream_and_kind_in_a_stream_created_on_first_use(broker, bus):
    server = broker("nats")
    bridge = make_bridge(bus, {"type": "nats", "url": server.url, "max_msgs_per_subject": 500})
    try:
        assert wait_state(bridge, "connected")
        for seq in range(600):
            bus.det("cam.1", seq)  # a '.' in an id: one subject token all the same
            if seq % 100 == 99:
                time.sleep(0.02)
        bus.publisher.publish("status/cam.1/", {"v": 1, "type": "status", "state": "live"})
        bus.publisher.publish("stats/", {"v": 1, "type": "stats", "streams": []})
        assert wait_until(lambda: bridge.figures()["sent"] == 602, 10), str(bridge.figures())
    finally:
        bridge.stop()

    async def info(js):
        return await js.stream_info("streams")

    stream = jetstream(server.url, info)
    assert stream.config.subjects == ["streams.>"]
    assert stream.state.messages == 500 + 1 + 1, "max_msgs_per_subject trims det to 500"
    det = fetch_all(server.url, "streams.det.cam%2E1")
    assert [m["seq"] for m in det] == list(range(100, 600))
    assert fetch_all(server.url, "streams.status.cam%2E1", "s")[0]["state"] == "live"
    assert fetch_all(server.url, "streams.stats", "t")[0]["type"] == "stats"


def test_server_restarted_mid_run_keeps_its_stream(broker, bus, progress):
    server = broker("nats")
    bridge = make_bridge(
        bus,
        {
            "type": "nats",
            "url": server.url,
            "queue_size": 200,
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.5,
        },
    )
    feeder = Feeder(bus, rate=400).start()
    try:
        # The same store directory: the stream and its messages are back after the restart.
        ride_out_a_restart(bridge, server, queue_size=200, back_s=15)
        sent_before = bridge.figures()["sent"]
        assert wait_until(lambda: bridge.figures()["sent"] > sent_before + 200, 10)
    finally:
        feeder.stop()
        bridge.stop()
    figures = bridge.figures()
    progress(f"{figures}, slowest publish {feeder.slowest_s * 1000:.2f} ms")
    seqs = [m["seq"] for m in fetch_all(server.url, "streams.det.cam1")]
    assert seqs == sorted(seqs)
    assert len(seqs) >= figures["sent"] - 200, "what was acknowledged survived the restart"
    check_nothing_lost_or_waited(bridge, bus, feeder)


def test_wrong_password(broker, bus, caplog):
    server = broker("nats", password="n4ts-secret")
    caplog.set_level(logging.DEBUG)
    bridge = make_bridge(
        bus,
        {
            "type": "nats",
            "url": server.url,
            "username": "streams",
            "password": "not-it",
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.2,
        },
    )
    try:
        assert wait_state(bridge, "reconnecting")
        time.sleep(0.5)
    finally:
        bridge.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"sink nats ({server.url}): the server refused the credentials")
    assert "not-it" not in caplog.text and "n4ts-secret" not in caplog.text
