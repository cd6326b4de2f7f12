"""Streams split over worker processes (streams/scale/supervisor.py): real processes, sockets.

What a subscriber sees must not change: one endpoint, every stream's ``det`` and ``status``,
one merged ``stats``; a worker killed with SIGKILL takes down only its own streams, which
come back when it is restarted; SIGTERM drains every worker.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from streams.bench.measure import child_pids
from streams.bus.messages import validate
from streams.config import parse_config
from streams.scale.supervisor import resolve_processes, split_streams
from tests.helpers import (
    Collector,
    cleanup,
    free_port,
    spawn_workers,
    start_cli,
    wait_until,
    write_config,
)


def _streams(assets) -> list[dict]:
    bikes, carphone = assets.videos["bikes.mp4"], assets.videos["carphone_pristine.mp4"]
    return [
        {"id": "a", "url": str(bikes), "loop": True, "fps": 4},
        {"id": "b", "url": str(carphone), "loop": True, "fps": 4},
        {"id": "c", "url": str(bikes), "loop": True, "fps": 4},
    ]


def _worker_pids(pid: int, count: int, timeout_s: float = 30.0) -> list[int]:
    """The supervisor's ``count`` worker processes, once that many are running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        workers = spawn_workers(pid)
        if len(workers) >= count:
            return sorted(workers)
        time.sleep(0.05)
    raise AssertionError(f"expected {count} worker processes under {pid}")


def test_two_workers_publish_through_one_endpoint_and_drain_on_sigterm(assets, tmp_path):
    port, metrics_port = free_port(), free_port()
    config = write_config(
        tmp_path / "c.yaml",
        _streams(assets),
        port,
        engine={"threads": 1},
        workers={"processes": 2},
        metrics={"port": metrics_port},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")
    try:
        assert collector.wait_for(
            lambda c: (
                all(len(c.of("det", s)) >= 5 for s in "abc")
                and any(
                    {r["stream"] for r in m["streams"] if r["processed"]} == set("abc")
                    for m in c.of("stats")
                )
            ),
            90,
        ), process.output()
        assert len(_worker_pids(process.pid, 2)) == 2
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read()
        for stream in "abc":
            assert f'streams_frames_processed_total{{stream="{stream}"}}'.encode() in metrics
        code, drain_s = process.drain(timeout_s=15)
        assert code == 0, process.output()
    finally:  # cleanup: the collector takes the last messages the relay forwarded
        cleanup(process, collector)
    for topic, message in collector.messages:
        validate(topic, message)
    stats = collector.of("stats")
    assert {r["stream"] for r in stats[-1]["streams"]} == set("abc")
    assert stats[-1]["pipeline"]["processes"] == 2
    for stream in "abc":
        states = [m["state"] for m in collector.of("status", stream)]
        assert "live" in states and states[-1] == "ended", (stream, states)
        seqs = [m["seq"] for m in collector.of("det", stream)]
        assert seqs == sorted(seqs), "one worker owns each stream: its frames stay in order"
    assert drain_s < 10.0
    # Real detections went through the relay: the cyclists of bikes.mp4.
    labels = {d["label"] for m in collector.of("det", "a") for d in m["detections"]}
    assert "person" in labels or "bicycle" in labels, labels


def test_a_killed_worker_takes_down_only_its_streams_and_is_restarted(assets, tmp_path):
    port = free_port()
    streams = _streams(assets)
    streams[2]["tracking"] = {"enabled": True}  # its restart says the tracks start afresh
    whole_frame = {"name": "all", "units": "fraction", "points": [[0, 0], [1, 0], [1, 1], [0, 1]]}
    streams[2]["zones"] = [whole_frame]  # and its zone counts carry over the restart
    config = write_config(
        tmp_path / "c.yaml", streams, port, engine={"threads": 1}, workers={"processes": 2}
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")
    try:

        def entered_c(c) -> list[int]:  # c's zone count in each merged stats message
            return [
                r["zones"][0]["entered"]
                for m in c.of("stats")
                for r in m["streams"]
                if r["stream"] == "c" and "zones" in r
            ]

        # Until the supervisor has a report counting c's first objects (what a worker counted
        # after its last report dies with it, like its other counters).
        assert collector.wait_for(
            lambda c: all(len(c.of("det", s)) >= 3 for s in "abc") and max(entered_c(c), default=0),
            90,
        ), process.output()
        reported = max(entered_c(collector))
        # Worker 1 owns stream c (shards are contiguous: [a, b], [c]); worker 0 starts first.
        victim = _worker_pids(process.pid, 2)[1]
        os.kill(victim, signal.SIGKILL)
        killed_at = len(collector.messages)
        assert collector.wait_for(
            lambda c: any(m["state"] == "reconnecting" for m in c.of("status", "c")), 20
        ), process.output()
        reason = next(m for m in collector.of("status", "c") if m["state"] == "reconnecting")
        assert "worker process 1 exited with code -9" in reason["reason"]
        assert reason["reason"].endswith("; its tracks start afresh (new track ids)")
        # Stream a kept flowing during the outage and c comes back with a new worker.
        assert collector.wait_for(
            lambda c: any(
                m["state"] == "live"
                for _, m in c.messages[killed_at:]
                if m["type"] == "status" and m.get("stream") == "c"
            ),
            60,
        ), process.output()
        during = [
            m
            for _, m in collector.messages[killed_at:]
            if m["type"] == "det" and m["stream"] == "a"
        ]
        assert during, "stream a kept flowing while c's worker was down"
        before = len(collector.of("det", "c"))
        assert collector.wait_for(lambda c: len(c.of("det", "c")) >= before + 3, 30)
        assert {m["state"] for m in collector.of("status", "a")} == {"connecting", "live"}
        processed_c = [
            next(r["processed"] for r in m["streams"] if r["stream"] == "c")
            for m in collector.of("stats")
        ]
        assert processed_c == sorted(processed_c), "merged counters never go backwards"
        # Zone counts too: the dead worker's reported enters stay counted; the new worker's
        # objects enter again, and its events reach the subscriber through the relay.
        assert collector.wait_for(
            lambda c: any(
                m["type"] == "event" and m["stream"] == "c" and m["event"] == "enter"
                for _, m in c.messages[killed_at:]
            ),
            30,
        ), "the restarted worker's zone events"
        counts = entered_c(collector)
        assert counts == sorted(counts) and counts[-1] >= reported, counts

        # No track id of c is reused by the restarted worker: its ids start above the dead
        # worker's (in det messages and in events alike).
        def c_ids(messages) -> set[int]:
            ids = {
                d["track_id"]
                for m in messages
                if m["type"] == "det" and m["stream"] == "c"
                for d in m["detections"]
                if d["track_id"] > 0
            }
            return ids | {m["track_id"] for m in messages
                          if m["type"] == "event" and m["stream"] == "c"}  # fmt: skip

        back = next(  # c's first `live` from the restarted worker: its messages follow
            i
            for i, (_, m) in enumerate(collector.messages)
            if i >= killed_at and m["type"] == "status" and m.get("stream") == "c"
            and m["state"] == "live"
        )  # fmt: skip
        old_ids = c_ids(m for _, m in collector.messages[:killed_at])
        new_ids = c_ids(m for _, m in collector.messages[back:])
        assert old_ids and new_ids and min(new_ids) > max(old_ids), (old_ids, new_ids)
        assert process.drain(timeout_s=15)[0] == 0
    finally:
        cleanup(process, collector)
    assert collector.of("stats")[-1]["pipeline"]["restarts"] == 1


def test_workers_config_and_shards():
    base = {"streams": [{"id": f"s{i}", "url": "sample:bikes.mp4"} for i in range(5)]}
    config = parse_config({**base, "workers": {"processes": 2}})
    assert split_streams(config, 2) == [["s0", "s1", "s2"], ["s3", "s4"]]
    assert resolve_processes(config)[0] == 2
    assert resolve_processes(parse_config({**base, "workers": {"processes": 9}}))[0] == 5
    cpu = parse_config({**base, "engine": {"backend": "onnxruntime"}})
    assert cpu.workers.processes == "auto"
    assert resolve_processes(cpu) == (1, "ONNX Runtime uses every CPU core from one process")
    from streams.errors import ConfigError

    with pytest.raises(ConfigError, match=r"workers\.processes: expected 'auto' or a number"):
        parse_config({**base, "workers": {"processes": "many"}})
    with pytest.raises(ConfigError, match=r"workers\.streams_per_process: 0 is out of range"):
        parse_config({**base, "workers": {"streams_per_process": 0}})


def test_a_model_that_cannot_load_fails_the_run_with_the_workers_reason(assets, tmp_path):
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"not an onnx model" * 10)
    config = write_config(
        tmp_path / "c.yaml",
        _streams(assets),
        free_port(),
        workers={"processes": 2},
        model={"path": str(bogus)},
    )
    process = start_cli("run", str(config), "--no-live")
    try:
        assert process.wait(timeout=60) == 1, process.output()
    finally:
        cleanup(process)
    output = process.output()
    assert "error: " in output and "model.onnx" in output, output[-2000:]
    assert "Traceback" not in output.split("error: ")[-1]


def test_restarting_workers_leaks_no_descriptors_in_the_supervisor(assets, tmp_path):
    """Three SIGKILLed workers, three restarts: the supervisor holds as many file descriptors
    as before and every stream is back."""
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml", _streams(assets), port, engine={"threads": 1}, workers={"processes": 2}
    )
    collector = Collector(f"tcp://127.0.0.1:{port}", kinds=("det", "status"))
    process = start_cli("run", str(config), "--no-live")
    fds = Path(f"/proc/{process.pid}/fd")
    try:
        assert collector.wait_for(lambda c: all(len(c.of("det", s)) >= 3 for s in "abc"), 90), (
            process.output()
        )
        before = len(list(fds.iterdir()))
        for attempt in range(1, 4):
            victim = _worker_pids(process.pid, 2)[1]
            os.kill(victim, signal.SIGKILL)
            # The supervisor notices and restarts it (1 s: the back-off resets once a worker
            # is ready again); stream c goes live once more.
            assert collector.wait_for(
                lambda c, n=attempt: (
                    sum(m["state"] == "live" for m in c.of("status", "c")) >= n + 1
                ),
                60,
            ), process.output()
            while victim in child_pids(process.pid):
                time.sleep(0.1)
        count = len(collector.of("det", "c"))
        assert collector.wait_for(lambda c: len(c.of("det", "c")) >= count + 3, 30)
        after = len(list(fds.iterdir()))
        assert process.drain(timeout_s=15)[0] == 0
    finally:
        cleanup(process, collector)
    print(f"supervisor fds: {before} before, {after} after 3 worker restarts")
    assert after <= before + 1, (before, after)


def test_a_hangup_to_the_whole_group_reloads_and_kills_no_worker(assets, tmp_path):
    """A terminal hangup sends SIGHUP to every process of the foreground group: the workers
    and multiprocessing's resource tracker too. The supervisor reloads (SIGHUP's meaning);
    the workers and the tracker go on (they used to die of it, and be restarted, and the
    tracker printed tracebacks)."""
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        _streams(assets),
        port,
        engine={"threads": 1},
        workers={"processes": 2},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live", new_group=True)
    try:
        assert collector.wait_for(lambda c: all(len(c.of("det", s)) >= 3 for s in "abc"), 120), (
            process.output()
        )
        workers = _worker_pids(process.pid, 2)
        os.killpg(process.pid, signal.SIGHUP)
        assert wait_until(lambda: f"reloaded {config}" in process.output(), 30), process.output()
        seen = {s: len(collector.of("det", s)) for s in "abc"}
        assert collector.wait_for(
            lambda c: all(len(c.of("det", s)) >= seen[s] + 3 for s in seen), 60
        ), process.output()
        assert _worker_pids(process.pid, 2) == workers  # the same two processes
        code, _ = process.drain(timeout_s=30)
        assert code == 0, process.output()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the workers too: they share its group
        cleanup(process, collector)
    output = process.output()
    assert "exited with code" not in output and "Traceback" not in output, output
    assert "resource_tracker" not in output, output
