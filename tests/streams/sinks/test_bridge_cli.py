"""``streams bridge``: the bridges alone, next to a publisher that runs elsewhere."""

from __future__ import annotations

import urllib.request

from tests.helpers import free_port, run_cli, start_cli, wait_until
from tests.streams.sinks.support import Bus, MqttReader


def test_bridge_with_a_sink_url_forwards_and_serves_its_own_metrics(broker):
    mosquitto = broker("mqtt")
    bus = Bus()
    metrics_port = free_port()
    reader = MqttReader(mosquitto.port, topics=("streams/det/#",))
    process = start_cli(
        "bridge",
        "--sink",
        mosquitto.url,
        "--endpoint",
        bus.endpoint,
        "--metrics-port",
        str(metrics_port),
    )
    url = f"http://127.0.0.1:{metrics_port}/metrics"

    def page() -> str:
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            return ""

    try:
        connected = 'streams_sink_connected{sink="mqtt",type="mqtt"} 1.0'
        assert wait_until(lambda: connected in page(), 20), process.output()
        seq = 0
        while not reader.on("streams/det/cam1") and seq < 200:  # until the SUB has joined
            bus.det("cam1", seq)
            seq += 1
            wait_until(lambda: reader.on("streams/det/cam1"), 0.05)
        assert reader.on("streams/det/cam1")
        assert wait_until(lambda: 'streams_sink_messages_sent_total{sink="mqtt"' in page(), 5)
        code, _ = process.drain(15)
        assert code == 0, process.output()
        assert f"sink mqtt ({mosquitto.url}): stopped" in process.output()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
        reader.close()
        bus.close()


def test_bridge_argument_errors_are_one_line():
    result = run_cli("bridge", timeout=60)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("argument config: give a config file with sinks:, or --sink URL")
    )
    result = run_cli("bridge", "--sink", "ftp://user:pw@host:21", timeout=60)
    assert result.returncode == 2
    assert "argument --sink: 'ftp://***@host:21': expected a URL starting mqtt://" in result.stderr
    assert "pw@" not in result.stderr and "Traceback" not in result.stderr
    result = run_cli("bridge", "--sink", "redis://h:6379", "--endpoint", "tcp://nohost", timeout=60)
    assert result.returncode == 2
    assert "argument --endpoint: expected a ZeroMQ endpoint like tcp://127.0.0.1:5555" in (
        result.stderr
    )
