"""SIGHUP reloads the config (issue 11, item 13): a real run, its config file edited, real
ZeroMQ subscribers. Added streams start, removed ones end, changed ones restart, the rest keep
their ``seq`` without a gap; a bad file or a change that cannot apply live is refused in one
log line and the running config stays."""

from __future__ import annotations

import os
import signal

import yaml

from tests.helpers import Collector, cleanup, free_port, start_cli, wait_until, write_config


def _seqs(collector: Collector, stream: str) -> list[int]:
    return [m["seq"] for m in collector.of("det", stream)]


def _index(collector: Collector, predicate) -> int | None:
    """Position of the first message (topic, message) that matches, in arrival order."""
    return next((i for i, (_, m) in enumerate(collector.messages) if predicate(m)), None)


def test_sighup_applies_stream_changes_and_leaves_the_rest_running(assets, tmp_path):
    port = free_port()
    bikes, carphone = str(assets.videos["bikes.mp4"]), str(assets.videos["carphone_pristine.mp4"])
    keep = {"id": "keep", "url": carphone, "loop": True, "pace": "none", "fps": 5}
    gone = {"id": "gone", "url": bikes, "loop": True, "fps": 2}
    change = {"id": "change", "url": bikes, "loop": True, "fps": 2}
    path = write_config(tmp_path / "c.yaml", [keep, gone, change], port)
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(path))
    try:
        assert collector.wait_for(
            lambda c: all(len(c.of("det", s)) >= 2 for s in ("keep", "gone", "change")), 90
        ), process.output()

        added = {"id": "added", "url": carphone, "loop": True, "fps": 2}
        # keep's fps alone changes: in place; change's decoder too: a restart.
        retuned = {**keep, "fps": 4}
        write_config(path, [retuned, {**change, "fps": 3, "decoder": "opencv"}, added], port)
        process.send_signal(signal.SIGHUP)
        assert collector.wait_for(lambda c: len(c.of("det", "added")) >= 2, 60), process.output()
        assert wait_until(lambda: "reloaded" in process.output(), 5), process.output()
        assert (
            "added added; removed gone; restarted change; changed in place keep" in process.output()
        )
        notes = [m for m in collector.of("status", "keep") if m.get("reason")]
        assert [(m["state"], m["reason"]) for m in notes] == [("live", "changed in place (fps)")]

        ended = [m for m in collector.of("status", "gone") if m["state"] == "ended"]
        assert ended and ended[0]["reason"] == "removed from the config", ended
        gone_ended_at = _index(collector, lambda m: m is ended[0])
        last_gone_det = max(
            i
            for i, (_, m) in enumerate(collector.messages)
            if m.get("stream") == "gone" and m["type"] == "det"
        )
        assert last_gone_det < gone_ended_at  # nothing from it after its ended

        restart = [m for m in collector.of("status", "change") if m["state"] == "reconnecting"]
        assert restart and restart[0]["reason"] == "restarting: the config changed (fps, decoder)"
        assert collector.wait_for(
            lambda c: (
                [m["state"] for m in c.of("status", "change")][-3:]
                == ["reconnecting", "connecting", "live"]
            ),
            30,
        ), collector.of("status", "change")
        restarted_at = _index(collector, lambda m: m is restart[0])
        before = [
            m["seq"]
            for i, (_, m) in enumerate(collector.messages)
            if i < restarted_at and m.get("stream") == "change" and m["type"] == "det"
        ]
        assert collector.wait_for(lambda c: len(_seqs(c, "change")) > len(before) + 1, 30)
        after = _seqs(collector, "change")[len(before) :]
        assert min(after) > max(before)  # seq carries on across the restart

        # A config that does not load is refused in one line; the running one stays.
        write_config(path, [keep, {"id": "bad", "url": str(tmp_path / "nope.mp4")}], port)
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "reload refused" in process.output(), 10), process.output()
        refused = [line for line in process.output().splitlines() if "reload refused" in line]
        assert "config error: streams[1].url: file not found" in refused[0], refused
        # So is a change that cannot apply live (the model is loaded once).
        write_config(path, [keep, {**change, "fps": 3}, added], port, model={"conf_threshold": 0.5})
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: process.output().count("reload refused") == 2, 10), (
            process.output()
        )
        refused = [line for line in process.output().splitlines() if "reload refused" in line]
        assert "model.conf_threshold changed" in refused[1], refused
        assert "restart the service" in refused[1]
        assert "Traceback" not in process.output()

        counts = {s: len(collector.of("det", s)) for s in ("keep", "change", "added")}
        assert collector.wait_for(
            lambda c: all(len(c.of("det", s)) > n + 1 for s, n in counts.items()), 30
        ), counts  # every stream of the running config still flows
        assert not any(m["stream"] == "bad" for m in collector.of("status"))

        code, _ = process.drain(timeout_s=15)
        assert code == 0, process.output()
    finally:
        cleanup(process, collector)
    seqs = _seqs(collector, "keep")
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # no gap, no restart
    for stream in ("keep", "change", "added"):
        assert collector.of("status", stream)[-1]["state"] == "ended"
    assert yaml.safe_load(path.read_text())["model"] == {"conf_threshold": 0.5}


def _worker_pid(process, index: int, timeout_s: float = 60.0) -> int:
    """The pid of worker ``index`` as the supervisor last logged it (``worker 0 (pid N): ...``)."""
    found: list[int] = []

    def logged() -> bool:
        found[:] = [
            int(line.split("(pid ")[1].split(")")[0])
            for line in process.output().splitlines()
            if f"worker {index} (pid " in line
        ]
        return bool(found)

    assert wait_until(logged, timeout_s), process.output()
    return found[-1]


def test_sighup_with_two_worker_processes_restarts_only_the_changed_streams(assets, tmp_path):
    """Shards are contiguous: worker 0 runs keep0 and gone, worker 1 keep1 and change. After
    the reload worker 0 has one stream left, so the added one goes there; killed with SIGKILL,
    worker 0 comes back with keep0 and added (not gone)."""
    port = free_port()
    bikes, carphone = str(assets.videos["bikes.mp4"]), str(assets.videos["carphone_pristine.mp4"])
    keep0 = {"id": "keep0", "url": carphone, "loop": True, "pace": "none", "fps": 4}
    gone = {"id": "gone", "url": bikes, "loop": True, "fps": 2}
    keep1 = {"id": "keep1", "url": carphone, "loop": True, "pace": "none", "fps": 4}
    change = {"id": "change", "url": bikes, "loop": True, "fps": 2}
    sections = {"engine": {"threads": 1}, "workers": {"processes": 2}}
    path = write_config(tmp_path / "c.yaml", [keep0, gone, keep1, change], port, **sections)
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(path), "--no-live")
    streams = ("keep0", "gone", "keep1", "change")
    try:
        assert collector.wait_for(lambda c: all(len(c.of("det", s)) >= 2 for s in streams), 120), (
            process.output()
        )
        added = {"id": "added", "url": carphone, "loop": True, "fps": 2}
        changed = {**change, "fps": 3, "decoder": "opencv"}
        write_config(path, [keep0, keep1, changed, added], port, **sections)
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: f"reloaded {path}" in process.output(), 30), process.output()
        assert f"reloaded {path}: added added; removed gone; restarted change" in process.output()
        assert "worker 0: streams keep0, added" in process.output()  # the least loaded
        assert "worker 1: streams keep1, change" in process.output()
        assert collector.wait_for(lambda c: len(c.of("det", "added")) >= 2, 60), process.output()

        ended = [m for m in collector.of("status", "gone") if m["state"] == "ended"]
        assert ended and ended[0]["reason"] == "removed from the config", ended
        restart = [m for m in collector.of("status", "change") if m["state"] == "reconnecting"]
        assert restart and restart[0]["reason"] == "restarting: the config changed (fps, decoder)"
        assert collector.wait_for(
            lambda c: [m["state"] for m in c.of("status", "change")][-1] == "live", 30
        ), collector.of("status", "change")
        assert collector.wait_for(
            lambda c: any(
                {r["stream"] for r in m["streams"]} == {"keep0", "keep1", "change", "added"}
                for m in c.of("stats")
            ),
            10,
        ), collector.of("stats")[-1]

        # Outside streams: is refused as with one process; the running config stays.
        write_config(
            path,
            [keep0, keep1, changed, added],
            port,
            model={"iou_threshold": 0.5},
            **sections,
        )
        process.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "reload refused" in process.output(), 10), process.output()
        assert "model.iou_threshold changed" in process.output()

        keep0_before_kill = _seqs(collector, "keep0")
        old_pid = _worker_pid(process, 0)
        os.kill(old_pid, signal.SIGKILL)
        killed_at = len(collector.messages)
        assert wait_until(lambda: _worker_pid(process, 0) != old_pid, 30), process.output()
        restarted = [line for line in process.output().splitlines() if "worker 0 (pid" in line]
        assert restarted[-1].endswith("streams keep0, added"), restarted
        assert collector.wait_for(
            lambda c: all(
                sum(1 for _, m in c.messages[killed_at:] if m["type"] == "det" and m["stream"] == s)
                >= 2
                for s in ("keep0", "added")
            ),
            60,
        ), process.output()
        code, _ = process.drain(timeout_s=15)
        assert code == 0, process.output()
    finally:
        cleanup(process, collector)
    assert "Traceback" not in process.output()
    after_kill = [m for _, m in collector.messages[killed_at:] if m.get("stream") == "gone"]
    assert after_kill == [], after_kill  # the restarted worker did not bring gone back
    for seqs in (keep0_before_kill, _seqs(collector, "keep1")):
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # no gap, no restart
    for stream in ("keep0", "keep1", "change", "added"):
        assert collector.of("status", stream)[-1]["state"] == "ended"
    assert collector.of("stats")[-1]["pipeline"]["restarts"] == 1
