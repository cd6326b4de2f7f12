"""``subscribe`` over several endpoints (the nodes of a cluster): each node's ``stats`` lists
its own streams; a person sees one merged line, and a node that sends nothing is named."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
import zmq

from streams.bus.messages import encode, stats_message, status_message, topic
from streams.cli.subscribe import MergedStats, SilentPublishers, describe
from tests.helpers import REPO, free_port


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _stats(*ids: str) -> dict:
    rows = [{"stream": i, "state": "live", "fps": 1.0} for i in ids]
    return {"v": 1, "type": "stats", "time": 1.0, "streams": rows, "pipeline": {}}


def test_merged_stats_one_view_of_every_publishers_latest():
    clock = Clock()
    merged = MergedStats(["tcp://a", "tcp://b"], every_s=1.0, stale_s=10.0, clock=clock)
    first = merged.note("tcp://a", _stats("a1", "a2"))
    assert [r["stream"] for r in first["streams"]] == ["a1", "a2"]
    assert first["publishers"] == (1, 2)
    clock.now = 0.5
    assert merged.note("tcp://b", _stats("b1")) is None, "at most one line a second"
    clock.now = 1.0
    both = merged.note("tcp://b", _stats("b1"))
    assert [r["stream"] for r in both["streams"]] == ["a1", "a2", "b1"]  # endpoint order
    assert describe(both) == "stats (3 streams, 2/2 publishers): a1 1.0 fps, a2 1.0 fps, b1 1.0 fps"
    clock.now = 10.5  # a's last stats is 10.5 s old: left out
    alone = merged.note("tcp://b", _stats("b1"))
    assert [r["stream"] for r in alone["streams"]] == ["b1"] and alone["publishers"] == (1, 2)


def test_silent_publishers_named_once_and_back():
    clock = Clock()
    silent = SilentPublishers(["tcp://a", "tcp://b"], after_s=5.0, clock=clock)
    clock.now = 4.0
    assert silent.note("tcp://a") is None
    assert silent.due() == []
    clock.now = 5.0
    (line,) = silent.due()
    assert "nothing yet from tcp://b for 5 s" in line
    assert silent.due() == [], "once"
    clock.now = 9.5
    (line,) = silent.due()
    assert "nothing more from tcp://a" in line
    assert silent.note("tcp://a") == "subscribe: tcp://a is sending again"


def _subscribe(tmp_path, name: str, *args: str) -> tuple[list[str], list[str]]:
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("w") as o, err.open("w") as e:
        subprocess.run(
            [sys.executable, "-m", "streams", "subscribe", *args],
            cwd=REPO,
            stdout=o,
            stderr=e,
            timeout=60,
            check=True,
        )
    return out.read_text().splitlines(), err.read_text().splitlines()


@pytest.mark.slow
def test_subscribe_merges_two_publishers_and_names_a_silent_one(tmp_path):
    ports = [free_port() for _ in range(3)]
    endpoints = [f"tcp://127.0.0.1:{p}" for p in ports]
    context = zmq.Context.instance()
    pubs = []
    for port in ports[:2]:  # the third endpoint has no publisher: a node that is down
        sock = context.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.bind(f"tcp://127.0.0.1:{port}")
        pubs.append(sock)
    stop = threading.Event()

    def send() -> None:  # what two nodes send: their own streams' status and stats
        while not stop.wait(0.2):
            for node, sock in enumerate(pubs):
                ids = [f"n{node}-a", f"n{node}-b"]
                rows = [{"stream": i, "state": "live", "fps": 2.0} for i in ids]
                stats = stats_message(rows, {"batches": 1}, 1.0)
                sock.send_multipart([topic("stats").encode(), encode(stats)])
                status = status_message(ids[0], "live")
                sock.send_multipart([topic("status", ids[0]).encode(), encode(status)])

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        shown, said = _subscribe(tmp_path, "merged", *endpoints, "--count", "80")
        raw, _ = _subscribe(
            tmp_path, "json", *endpoints[:2], "--json", "--kinds", "stats", "--count", "6"
        )
    finally:
        stop.set()
        sender.join(2)
        for sock in pubs:
            sock.close(0)
    assert any(f"nothing yet from {endpoints[2]} for 5 s" in line for line in said), said
    assert not [line for line in said if endpoints[0] in line or endpoints[1] in line], said
    merged = [line for line in shown if line.startswith("stats")]
    assert merged and all(
        line == "stats (4 streams, 2/3 publishers): n0-a 2.0 fps, n0-b 2.0 fps, n1-a 2.0 fps, "
        "n1-b 2.0 fps"
        for line in merged[1:]  # the first may come before the second node's first
    ), merged
    assert {line for line in shown if line.startswith("status")} == {
        "status n0-a: live",
        "status n1-a: live",
    }
    # --json: each publisher's stats as it was sent, its own streams only.
    assert {tuple(r["stream"] for r in json.loads(line)["streams"]) for line in raw} == {
        ("n0-a", "n0-b"),
        ("n1-a", "n1-b"),
    }
