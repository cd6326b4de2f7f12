"""What the bridge tests share: a real Publisher on loopback (the pipeline's own), a feeder
that keeps it busy and times each ``publish`` call, readers of each broker, and bridges built
from a config the way ``streams run`` builds them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson

from streams.bus.publisher import Publisher
from streams.config import PublishConfig, parse_sinks
from streams.runtime.stats import PipelineStats
from streams.sinks.base import Bridge
from tests.helpers import free_port, wait_until


class Bus:
    """The pipeline's Publisher bound on a free loopback port."""

    def __init__(self) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.stats = PipelineStats()
        self.publisher = Publisher(
            PublishConfig(endpoint=self.endpoint, join_grace_ms=0), self.stats
        )

    def det(self, stream: str, seq: int) -> None:
        self.publisher.publish(
            f"det/{stream}/", {"v": 1, "type": "det", "stream": stream, "seq": seq}
        )

    def close(self) -> None:
        self.publisher.close()


class Feeder:
    """``rate`` det messages a second on ``stream`` from a thread; the slowest publish call."""

    def __init__(self, bus: Bus, stream: str = "cam1", rate: float = 500) -> None:
        self.bus, self.stream, self.rate = bus, stream, rate
        self.sent = 0
        self.slowest_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def _run(self) -> None:
        began = time.monotonic()
        while not self._stop.is_set():
            due = began + self.sent / self.rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            t = time.monotonic()
            self.bus.det(self.stream, self.sent)
            self.slowest_s = max(self.slowest_s, time.monotonic() - t)
            self.sent += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def make_bridge(bus: Bus, sink: dict, tmp_path: Path | None = None) -> Bridge:
    config = parse_sinks([sink], tmp_path or Path("."))[0]
    bridge = Bridge(config, bus.endpoint)
    bridge.start()
    time.sleep(0.2)  # the SUB socket's handshake with the bound publisher
    return bridge


def wait_state(bridge: Bridge, state: str, timeout_s: float = 10) -> bool:
    return wait_until(lambda: bridge.figures()["state"] == state, timeout_s)


class MqttReader:
    """A paho subscriber collecting ``(topic, payload, retain)`` of ``topics``."""

    def __init__(self, url_port: int, topics=("#",), username=None, password=None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self._connected = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        if username:
            client.username_pw_set(username, password)

        def on_connect(c, _u, _f, rc, _p):
            for t in topics:
                c.subscribe(t, qos=1)
            self._connected.set()

        client.on_connect = on_connect
        client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload, m.retain))
        client.connect("127.0.0.1", url_port)
        client.loop_start()
        self.client = client
        assert self._connected.wait(5)
        time.sleep(0.2)  # SUBACK

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in list(self.messages) if t == topic]

    def seqs(self, topic: str) -> list[int]:
        return [orjson.loads(p)["seq"] for p in self.on(topic)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def ride_out_a_restart(bridge: Bridge, server, queue_size: int, back_s: float = 10) -> None:
    """With a Feeder running: the bridge sends, ``server`` is killed, the bridge reconnects
    while its buffer fills to ``queue_size`` and the oldest are dropped and counted, the
    server starts again and the bridge is connected within ``back_s``."""
    assert wait_state(bridge, "connected")
    assert wait_until(lambda: bridge.figures()["sent"] > 100, 10)
    server.kill()
    assert wait_state(bridge, "reconnecting", 10)
    assert wait_until(lambda: bridge.figures()["dropped"]["queue_full"] > 100, 10)
    assert bridge.figures()["queue_depth"] <= queue_size
    server.start()
    assert wait_state(bridge, "connected", back_s)


def check_nothing_lost_or_waited(bridge: Bridge, bus: Bus, feeder: Feeder) -> None:
    """Every message the bridge received (it waits for none after stop) was sent or dropped
    and counted; the pipeline's publisher never dropped one or waited for the broker."""
    figures = bridge.figures()
    never_sent = figures["dropped"]["queue_full"] + figures["dropped"]["client_queue"]
    assert figures["received"] == figures["sent"] + never_sent + figures["queue_depth"]
    assert bus.stats.publish_dropped == 0 and feeder.slowest_s < 0.05
