"""Nodes of a cluster (``run --shard K/N``): real ``streams run`` processes on loopback, each
publishing on its own port, over one shared config of 32 file streams.

Every stream runs on exactly one node, the one rendezvous hashing names; a merged
``streams subscribe`` over the four endpoints sees all 32; a node killed and started again
takes back its own streams while no other node's streams move; a reload (SIGHUP) of the
shared file starts each added stream on one node only; going from 4 to 5 nodes moves at most a
quarter of the streams, each to the new node.

Kept light for a small CPU box: a 60 s, 2 frames/s copy of the 176x144 carphone clip (the 4 s
original loops faster than a low ``fps`` cap: each pass of a looped file keeps its first
picture at once), 0.1 frames/s per stream (32 streams: 3.2 frames/s over all nodes), one
ONNX Runtime thread per node.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from streams.scale.rendezvous import assign
from tests.helpers import REPO, CliProcess, Collector, cleanup, free_port, start_cli, wait_until

STREAMS = 32
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slow_clip(assets, tmp_path_factory) -> Path:
    """carphone's 120 pictures at 2 frames/s: a 60 s file that is cheap to decode 32 times."""
    import cv2

    path = tmp_path_factory.mktemp("clip") / "carphone-2fps.mp4"
    reader = cv2.VideoCapture(str(assets.videos["carphone_pristine.mp4"]))
    writer = None
    while (picture := reader.read()[1]) is not None:
        if writer is None:
            size = (picture.shape[1], picture.shape[0])
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 2.0, size)
        writer.write(picture)
    reader.release()
    writer.release()
    return path


def _config(path: Path, clip: Path, count: int) -> Path:
    raw = {
        "streams": [
            {"id": f"cam-{i:02d}", "url": str(clip), "loop": True, "fps": 0.1} for i in range(count)
        ],
        "engine": {"backend": "onnxruntime", "max_batch": 8, "threads": 1},
        # The file is shared: each node's port comes from its environment (${VAR}).
        "publish": {"endpoint": "tcp://127.0.0.1:${NODE_PORT}", "stats_interval_s": 0.5},
        "metrics": {"port": 0},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


class Node:
    """One ``streams run --shard K/N`` process, its port and a collector on it."""

    def __init__(self, config: Path, index: int, count: int, port: int) -> None:
        self.index, self.count, self.port = index, count, port
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.config = config
        self.collector = Collector(self.endpoint, kinds=("det", "stats"))
        self.process = self.start()

    def start(self) -> CliProcess:
        return start_cli(
            "run",
            str(self.config),
            "--no-live",
            "--shard",
            f"{self.index}/{self.count}",
            env={"NODE_PORT": str(self.port)},
        )

    def stats_streams(self, since: int = 0) -> list[set[str]]:
        """The stream ids of each ``stats`` this node sent (from message ``since`` on)."""
        return [
            {r["stream"] for r in m["streams"]}
            for _, m in self.collector.messages[since:]
            if m["type"] == "stats"
        ]

    def det_streams(self, since: int = 0) -> set[str]:
        return {m["stream"] for _, m in self.collector.messages[since:] if m["type"] == "det"}

    def serving(self, expected: set[str], since: int = 0) -> bool:
        """Its stats list ``expected`` and each of them has a det since ``since``."""
        lists = self.stats_streams(since)
        return bool(lists) and lists[-1] == expected and expected <= self.det_streams(since)

    def close(self) -> None:
        cleanup(self.process, self.collector)


def _ids(count: int) -> list[str]:
    return [f"cam-{i:02d}" for i in range(count)]


def _owners(nodes: list[Node]) -> dict[str, int]:
    """Which node each stream's det messages came from (asserting there is only one)."""
    owners: dict[str, int] = {}
    for node in nodes:
        for stream in node.det_streams():
            assert stream not in owners, f"{stream}: on node {owners[stream]} and {node.index}"
            owners[stream] = node.index
    return owners


def test_four_nodes_share_32_streams_restart_reload_and_grow_to_five(slow_clip, tmp_path, progress):
    ports = [free_port() for _ in range(5)]
    config = _config(tmp_path / "cluster.yaml", slow_clip, STREAMS)
    expected4 = [set(share) for share in assign(_ids(STREAMS), 4)]
    assert all(expected4), "every node has streams to run"
    nodes: list[Node] = []
    merged_log = tmp_path / "merged.jsonl"
    merged = None
    try:
        # A merged subscriber over the four endpoints, as a user would run it, waiting first.
        with merged_log.open("w") as out:
            merged = _subscribe([f"tcp://127.0.0.1:{p}" for p in ports[:4]], out)
        nodes = [Node(config, k, 4, ports[k]) for k in range(4)]
        began = time.monotonic()
        assert wait_until(
            lambda: all(n.serving(expected4[n.index]) for n in nodes), 90, interval_s=0.2
        ), _outputs(nodes)
        progress(f"4 nodes serve their shards after {time.monotonic() - began:.1f} s")
        owners = _owners(nodes)
        assert sorted(owners) == _ids(STREAMS), "each of the 32 streams is processed"
        assert {s: k for k, share in enumerate(expected4) for s in share} == owners
        for node in nodes:
            shards = {json.dumps(m["pipeline"]["shard"]) for m in node.collector.of("stats")}
            assert shards == {json.dumps({"index": node.index, "count": 4})}, shards
        # The merged subscriber saw every stream's det from the four nodes.
        assert wait_until(lambda: _merged_streams(merged_log) == set(_ids(STREAMS)), 20), sorted(
            set(_ids(STREAMS)) - _merged_streams(merged_log)
        )

        # --- kill node 2, start it again -------------------------------------------------------
        victim = nodes[2]
        marks = [len(n.collector.messages) for n in nodes]
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        killed_at = time.monotonic()
        victim.process = victim.start()
        assert wait_until(
            lambda: victim.serving(expected4[2], since=marks[2]), 60, interval_s=0.2
        ), victim.process.output()
        progress(f"node 2 serves its streams again {time.monotonic() - killed_at:.1f} s after kill")
        for node in nodes:
            if node is victim:
                continue
            lists = node.stats_streams(marks[node.index])
            assert lists and all(s == expected4[node.index] for s in lists), (node.index, lists)
            assert node.det_streams(marks[node.index]) <= expected4[node.index]
        assert _owners(nodes) == owners, "no stream changed node"

        # --- a reload of the shared file: each added stream starts on one node -------------------
        grown = _ids(STREAMS + 4)
        expected_grown = [set(share) for share in assign(grown, 4)]
        raw = yaml.safe_load(config.read_text())
        raw["streams"] += [dict(raw["streams"][0], id=i) for i in grown[STREAMS:]]
        config.write_text(yaml.safe_dump(raw))
        marks = [len(n.collector.messages) for n in nodes]
        for node in nodes:
            node.process.send_signal(signal.SIGHUP)
        assert wait_until(
            lambda: all(
                (lists := n.stats_streams(marks[n.index])) and lists[-1] == expected_grown[n.index]
                for n in nodes
            ),
            30,
        ), _outputs(nodes)
        for node in nodes:
            assert expected_grown[node.index] >= expected4[node.index], "nothing moved"
        added = set(grown[STREAMS:])
        assert wait_until(
            lambda: all(
                n.det_streams(marks[n.index]) & added == expected_grown[n.index] & added
                for n in nodes
            ),
            30,
        ), [sorted(n.det_streams(marks[n.index]) & added) for n in nodes]
        progress("reload: 4 added streams, each on the node hashing names")

        # --- 4 -> 5 nodes ------------------------------------------------------------------------
        raw["streams"] = raw["streams"][:STREAMS]
        config.write_text(yaml.safe_dump(raw))
        for node in nodes:  # SIGTERM to all, then wait: they drain side by side
            node.process.send_signal(signal.SIGTERM)
        for node in nodes:
            assert node.process.wait(20) == 0, node.process.output()
            node.close()
        nodes = [Node(config, k, 5, ports[k]) for k in range(5)]
        expected5 = [set(share) for share in assign(_ids(STREAMS), 5)]
        began = time.monotonic()
        assert wait_until(
            lambda: all(n.serving(expected5[n.index]) for n in nodes), 90, interval_s=0.2
        ), _outputs(nodes)
        progress(f"5 nodes serve their shards after {time.monotonic() - began:.1f} s")
        owners5 = _owners(nodes)
        assert sorted(owners5) == _ids(STREAMS)
        moved = sorted(s for s in owners if owners[s] != owners5[s])
        progress(f"4 -> 5 nodes: {len(moved)} of {STREAMS} streams moved: {', '.join(moved)}")
        assert len(moved) <= STREAMS // 4, moved
        assert all(owners5[s] == 4 for s in moved), "a stream only moves to the new node"
    finally:
        if merged is not None:
            cleanup(merged)
        for node in nodes:
            node.close()


def _subscribe(endpoints: list[str], out) -> CliProcess:
    """``streams subscribe`` over every endpoint, its JSON lines into ``out``."""
    process = CliProcess(
        [sys.executable, "-m", "streams", "subscribe", *endpoints, "--kinds", "det", "--json"],
        cwd=REPO,
        stdout=out,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    process.log_path = Path(out.name)
    return process


def _merged_streams(path: Path) -> set[str]:
    text = path.read_text()
    whole = text[: text.rfind("\n") + 1]  # not a line still being written
    return {json.loads(line)["stream"] for line in whole.splitlines() if line.strip()}


def _outputs(nodes: list[Node]) -> str:
    return "\n".join(f"--- node {n.index}:\n{n.process.output()[-1500:]}" for n in nodes)
