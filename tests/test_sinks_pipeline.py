"""``streams run`` with sinks: the real pipeline on a sample video, its bridges as child
processes, real Mosquitto, redis-server and nats-server on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
import redis

from tests.helpers import (
    Collector,
    cleanup,
    free_port,
    run_cli,
    start_cli,
    wait_until,
    write_config,
)
from tests.streams.sinks.support import MqttReader


def nats_messages(url: str, subject: str) -> list[dict]:
    import nats

    async def main():
        nc = await nats.connect(url)
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, durable="test")
        out = []
        try:
            while True:
                for m in await sub.fetch(500, timeout=1):
                    out.append(orjson.loads(m.data))
        except Exception:  # nothing left
            return out
        finally:
            await nc.close()

    return asyncio.run(main())


@pytest.mark.slow
def test_run_forwards_every_message_to_all_three_brokers(assets, broker, tmp_path):
    brokers = {kind: broker(kind) for kind in ("mqtt", "redis", "nats")}
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [{"id": "bikes", "url": str(assets.videos["bikes.mp4"]), "pace": "none", "fps": 5}],
        port,
        sinks=[{"type": kind, "url": b.url} for kind, b in brokers.items()],
    )
    reader = MqttReader(brokers["mqtt"].port, topics=("streams/#",))
    try:
        result = run_cli("run", str(config), "--no-live", timeout=180)
    finally:
        reader.close()
    assert result.returncode == 0, result.stderr
    for kind in brokers:
        assert f"sink {kind} (" in result.stderr and "connected" in result.stderr
    # pace: none, fps 5: 50 frames, every one in each broker, in order.
    assert reader.seqs("streams/det/bikes") == list(range(50))
    states = [orjson.loads(p)["state"] for p in reader.on("streams/status/bikes")]
    assert states == ["connecting", "live", "ended"], "the last status got out before the stop"
    assert (
        "sink mqtt: " in result.stderr
        and " 0 dropped (none), 0 left unsent, 0 restarts" in result.stderr
    )
    client = redis.Redis.from_url(brokers["redis"].url)
    entries = client.xrange("streams:det:bikes")
    assert [orjson.loads(f[b"data"])["seq"] for _, f in entries] == list(range(50))
    assert [m["seq"] for m in nats_messages(brokers["nats"].url, "streams.det.bikes")] == list(
        range(50)
    )


def bridge_pids(parent: int) -> list[int]:
    """The ``spawn`` children of ``parent`` that run a bridge (not the resource tracker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


def metric(port: int, line_start: str) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.slow
def test_unreachable_broker_and_a_crashed_bridge_never_stop_the_pipeline(
    assets, broker, tmp_path, progress
):
    mosquitto = broker("mqtt", start=False)  # nothing listens there yet
    port, metrics_port = free_port(), free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [{"id": "bikes", "url": str(assets.videos["bikes.mp4"]), "loop": True, "fps": 5}],
        port,
        metrics={"port": metrics_port},
        sinks=[{"type": "mqtt", "url": mosquitto.url, "reconnect_max_s": 0.5}],
    )
    collector = Collector(f"tcp://127.0.0.1:{port}", kinds=("det",))
    process = start_cli("run", str(config), "--no-live")
    state = 'streams_sink_state{sink="mqtt",state="%s",type="mqtt"}'
    try:
        assert collector.wait_for(lambda c: len(c.of("det")) >= 5, 60), process.output()
        assert wait_until(lambda: metric(metrics_port, state % "reconnecting") == 1.0, 10)
        assert "sink mqtt (mqtt://127.0.0.1:" in process.output()
        assert "Connection refused" in process.output()
        progress("reconnecting, the pipeline runs; killing the bridge process")
        (pid,) = bridge_pids(process.pid)
        os.kill(pid, signal.SIGKILL)
        restarts = 'streams_sink_restarts_total{sink="mqtt",type="mqtt"}'
        assert wait_until(lambda: metric(metrics_port, restarts) == 1.0, 10)
        flowing = len(collector.of("det"))
        assert collector.wait_for(lambda c: len(c.of("det")) >= flowing + 5, 10)
        assert wait_until(lambda: bridge_pids(process.pid) not in ([], [pid]), 15)
        progress("restarted; starting the broker")
        mosquitto.start()
        reader = MqttReader(mosquitto.port, topics=("streams/det/bikes",))
        try:
            assert wait_until(lambda: metric(metrics_port, state % "connected") == 1.0, 15)
            assert wait_until(lambda: len(reader.on("streams/det/bikes")) >= 3, 10)
        finally:
            reader.close()
        sent = 'streams_sink_messages_sent_total{sink="mqtt",type="mqtt"}'
        assert wait_until(lambda: metric(metrics_port, sent) >= 3, 5)  # figures: every 0.5 s
        assert process.poll() is None
        code, _ = process.drain(20)
        assert code == 0, process.output()
        assert "the bridge process exited (code -9); restarting it" in process.output()
        time.sleep(0.5)
        assert bridge_pids(process.pid) == [], "no bridge outlives the run"
    finally:
        cleanup(process, collector)


def test_bad_sink_config_is_one_line_naming_the_key(tmp_path):
    cases = [
        (
            {"type": "mqtt", "url": "mqtt://broker:1883"},
            {"type": "redis", "url": "http://x:6379"},
            "sinks[1].url: 'http://x:6379': type redis takes redis://HOST:PORT or rediss://HOST:PORT",
        ),
        (
            {"type": "kafka", "url": "kafka://x:9092"},
            None,
            "sinks[0].type: expected one of mqtt, redis, nats",
        ),
        (
            {"type": "nats", "url": "nats://u:hunter2@:4222"},
            None,
            "sinks[0].url: 'nats://***@:4222' has no host",
        ),
    ]
    for first, second, expected in cases:
        sinks = [first] + ([second] if second else [])
        config = write_config(
            tmp_path / "c.yaml", [{"id": "a", "url": "sample:bikes.mp4"}], free_port(), sinks=sinks
        )
        result = run_cli("run", str(config), "--no-live", timeout=60)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [f"config error: {expected}"] or (
            expected in result.stderr and "Traceback" not in result.stderr
        ), result.stderr
        assert "hunter2" not in result.stderr
