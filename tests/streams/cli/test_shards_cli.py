"""``streams shards`` and ``run --shard``: real CLI processes. What a node takes is printed
before anything runs; a bad --shard is one line and exit 2; a node whose share is empty
waits for a reload instead of exiting (a pod that exits is only restarted, for ever)."""

from __future__ import annotations

import os
import signal

import pytest
import yaml

from streams.scale.rendezvous import assign, moves, owner
from tests.helpers import Collector, cleanup, free_port, run_cli, start_cli, wait_until

IDS = [f"cam-{i:02d}" for i in range(32)]


def _config(path, ids, port=5555, url="sample:bikes.mp4"):
    raw = {
        "streams": [{"id": i, "url": url, "loop": True, "fps": 1} for i in ids],
        "engine": {"backend": "onnxruntime", "threads": 1},
        "publish": {"endpoint": f"tcp://127.0.0.1:{port}", "stats_interval_s": 0.5},
        "metrics": {"port": 0},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shards_prints_each_nodes_streams_and_what_moves(tmp_path):
    config = _config(tmp_path / "c.yaml", IDS)
    result = run_cli("shards", str(config), "--nodes", "5", "--from", "4", timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for node, share in enumerate(assign(IDS, 5)):
        assert f"node {node}: {len(share)} streams: {', '.join(share)}" in " ".join(out.split())
    moved = moves(IDS, 4, 5)
    assert f"from 4 to 5 nodes: {len(moved)} of 32 streams move" in out
    for move in moved:
        assert f"  {move.stream}: node {move.before} -> node 4\n" in out
    assert out.count(" -> node ") == len(moved)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--shard", "4/4"], {}, "argument --shard: '4/4': node 4 does not exist among 4"),
        (["--shard", "half"], {}, "argument --shard: expected K/N"),
        (["--shard", "auto"], {"HOSTNAME": "box"}, "argument --shard: auto: cannot tell"),
        (["--shard", "1/4", "--replicas", "4"], {}, "argument --replicas: goes with --shard auto"),
        (
            ["--replicas", "0"],
            {},
            "argument --replicas: expected a number of nodes from 1 to 10000, got 0",
        ),
    ],
)
def test_a_bad_shard_is_one_line_and_exit_2(tmp_path, args, env, message):
    config = _config(tmp_path / "c.yaml", IDS[:2])
    environ = {k: v for k, v in os.environ.items() if k not in ("POD_NAME", "HOSTNAME")}
    result = run_cli("run", str(config), "--no-live", *args, timeout=30, env={**environ, **env})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr.strip().splitlines()[-1], "the one line that says why"


def test_shards_refuses_a_bad_node_count(tmp_path):
    result = run_cli("shards", str(_config(tmp_path / "c.yaml", IDS)), "--nodes", "0")
    assert (
        result.returncode == 2
        and "--nodes: expected a number of nodes from 1 to 10000" in result.stderr
    )


@pytest.mark.slow
def test_an_empty_share_waits_and_a_reload_gives_it_streams(tmp_path):
    port = free_port()
    node0 = [i for i in IDS if owner(i, 2) == 0][:2]
    node1 = next(i for i in IDS if owner(i, 2) == 1)
    config = _config(tmp_path / "c.yaml", node0, port)
    collector = Collector(f"tcp://127.0.0.1:{port}", kinds=("det", "stats"))
    process = start_cli("run", str(config), "--no-live", "--shard", "1/2")
    try:
        assert wait_until(lambda: "holds none of the streams" in process.output(), 30), (
            process.output()
        )
        assert process.poll() is None, "it waits rather than exits"
        _config(config, [*node0, node1], port)  # the shared file gains a stream of node 1
        process.send_signal(signal.SIGHUP)
        assert collector.wait_for(
            lambda c: c.of("det", node1) and (st := c.of("stats")) and st[-1]["streams"], 60
        ), process.output()
        stats = collector.of("stats")[-1]
        assert [r["stream"] for r in stats["streams"]] == [node1]
        assert stats["pipeline"]["shard"] == {"index": 1, "count": 2}
        assert not set(node0) & {m["stream"] for m in collector.of("det")}
        assert process.drain(timeout_s=15)[0] == 0, process.output()
    finally:
        cleanup(process, collector)


def test_a_sharded_node_says_which_shard_it_is():
    from prometheus_client import CollectorRegistry, generate_latest

    from streams.bus.metrics import PipelineCollector
    from streams.cli.display import pipeline_parts
    from streams.cli.systemd import summary_line

    pipeline = {"batches": 1, "mean_batch": 1.0, "inference_p50_ms": 5.0, "published": 3}
    pipeline |= {"publish_dropped": 0, "shard": {"index": 2, "count": 4}}
    row = {"stream": "a", "state": "live", "fps": 1.5, "p50_ms": 1.0, "p99_ms": 2.0}
    row |= {"decoded": 1, "processed": 1, "dropped": 0, "reconnects": 0}
    snapshot = {"uptime_s": 3.0, "streams": [row], "pipeline": pipeline}
    assert summary_line(snapshot) == "shard 2/4: 1/1 streams live, 1.5 frames/s"
    assert pipeline_parts(snapshot)[0] == "shard 2/4"
    registry = CollectorRegistry()
    registry.register(PipelineCollector(lambda: snapshot))
    assert b'streams_shard{count="4",index="2"} 1.0' in generate_latest(registry)
    del pipeline["shard"]
    assert b"streams_shard" not in generate_latest(registry)
    assert summary_line(snapshot) == "1/1 streams live, 1.5 frames/s"
