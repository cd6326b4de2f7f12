"""A GPU that fails has its streams moved to the other GPUs (streams/scale/supervisor.py).

On the CPU: real worker processes run ONNX Runtime but are labelled GPU 0 and GPU 1 (the
supervisor's ``gpus``; each worker also gets ``CUDA_VISIBLE_DEVICES``, harmless here). The
worker on GPU 1 is killed with SIGKILL past ``workers.gpu_restart_budget``: its streams must
say so in ``status`` and come back on GPU 0's worker, counters carried, and GPU 1's worker
must not be started again. What a subscriber sees is read from a real SUB socket.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from streams.bus.messages import validate
from streams.config import parse_config
from streams.scale.supervisor import Supervisor
from tests.helpers import Collector, free_port, spawn_workers, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def supervisor_on_two_gpus(assets):
    port = free_port()
    bikes, carphone = assets.videos["bikes.mp4"], assets.videos["carphone_pristine.mp4"]
    config = parse_config(
        {
            "streams": [
                {"id": sid, "url": str(url), "loop": True, "fps": 4}
                for sid, url in (("a", bikes), ("b", carphone), ("c", bikes), ("d", carphone))
            ],
            "engine": {"backend": "onnxruntime", "max_batch": 4, "threads": 1},
            "publish": {"endpoint": f"tcp://127.0.0.1:{port}", "stats_interval_s": 0.5},
            "metrics": {"port": 0},
            "workers": {"gpu_restart_budget": 1, "gpu_restart_window_s": 300},
        }
    )
    supervisor = Supervisor(config, 2, gpus=[0, 1])
    collector = Collector(f"tcp://127.0.0.1:{port}", kinds=("det", "status", "stats"))
    try:
        yield supervisor, collector
    finally:
        supervisor.close()
        collector.close()


def test_a_gpu_whose_worker_keeps_dying_has_its_streams_moved(supervisor_on_two_gpus, caplog):
    supervisor, collector = supervisor_on_two_gpus
    caplog.set_level("INFO")
    supervisor.start()
    # Equal streams alternate over the GPUs: a, c on GPU 0 (worker 0), b, d on GPU 1.
    assert collector.wait_for(lambda c: all(len(c.of("det", s)) >= 2 for s in "abcd"), 90)
    gpus = supervisor.snapshot()["pipeline"]["gpus"]
    assert [(g["gpu"], g["state"], g["streams"]) for g in gpus] == [(0, "ok", 2), (1, "ok", 2)]
    for worker in (0, 1):  # each worker sees its own GPU only (pinned before CUDA could load)
        assert f"worker {worker}: GPU {worker} only (CUDA_VISIBLE_DEVICES=" in caplog.text
    decoded_b = next(r["decoded"] for r in supervisor.snapshot()["streams"] if r["stream"] == "b")

    first = supervisor.worker_pids()[1]
    os.kill(first, signal.SIGKILL)  # one death: within the budget, restarted on GPU 1
    assert wait_until(
        lambda: supervisor.worker_pids()[1] != first and len(spawn_workers(os.getpid())) == 2, 30
    )
    lives = len([m for m in collector.of("status", "b") if m["state"] == "live"])
    assert collector.wait_for(
        lambda c: len([m for m in c.of("status", "b") if m["state"] == "live"]) > lives, 60
    ), "b came back on the restarted GPU 1 worker"
    assert "GPU 1 failed" not in str(collector.of("status"))

    os.kill(supervisor.worker_pids()[1], signal.SIGKILL)  # past the budget: GPU 1 is out
    for sid in "bd":
        assert collector.wait_for(
            lambda c, s=sid: any(
                "GPU 1 failed" in (m.get("reason") or "") for m in c.of("status", s)
            ),
            30,
        ), sid
    moved = [m for m in collector.of("status", "b") if "GPU 1 failed" in (m.get("reason") or "")]
    assert moved[0]["state"] == "reconnecting" and moved[0]["attempt"] == 1
    assert (
        "died 2 times" in moved[0]["reason"]
        and "moving to GPU 0 (worker process 0)" in (moved[0]["reason"])
    )
    # b and d run on GPU 0's worker now, next to a and c, which never stopped.
    count = {s: len(collector.of("det", s)) for s in "abcd"}
    assert collector.wait_for(
        lambda c: all(len(c.of("det", s)) >= count[s] + 3 for s in "abcd"), 60
    ), collector.of("status")
    time.sleep(2.0)  # GPU 1's worker is not restarted, however long we wait
    assert len(spawn_workers(os.getpid())) == 1
    snapshot = supervisor.snapshot()
    by_gpu = {g["gpu"]: g for g in snapshot["pipeline"]["gpus"]}
    assert by_gpu[1]["state"] == "failed" and "died 2 times" in by_gpu[1]["reason"]
    assert by_gpu[0]["state"] == "ok" and by_gpu[0]["streams"] == 4 and by_gpu[1]["streams"] == 0
    assert by_gpu[0]["fps"] > 0
    row_b = next(r for r in snapshot["streams"] if r["stream"] == "b")
    assert row_b["state"] == "live" and row_b["decoded"] >= decoded_b  # counters carried
    assert not supervisor.all_streams_finished()
    for topic, message in collector.messages:
        validate(topic, message)
    sent = {k for m in collector.of("stats") for g in m["pipeline"]["gpus"] for k in g}
    assert sent == documented_gpu_fields()  # the ok GPU's and the failed one's, all documented


def documented_gpu_fields() -> set[str]:
    """The fields docs/messages.md lists under ``pipeline.gpus``."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "messages.md").read_text()
    block = text.split("## `pipeline.gpus`", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"^\| (`[^|]+`) \|", block, flags=re.M)
    return {name for cell in cells for name in re.findall(r"`(\w+)`", cell)}


def test_an_xid_in_a_workers_error_log_fails_its_gpu_at_once(supervisor_on_two_gpus):
    """The log path: an ERROR record from GPU 1's worker naming an Xid (as a CUDA error
    carries it) moves that GPU's streams without waiting for deaths."""
    import logging

    supervisor, collector = supervisor_on_two_gpus
    supervisor.start()
    assert collector.wait_for(lambda c: all(len(c.of("det", s)) >= 1 for s in "abcd"), 90)
    record = logging.LogRecord("w1 engines", logging.ERROR, __file__, 0, "%s", None, None)
    record.msg = "batch failed: NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus"
    record.worker = 1
    supervisor._on_log_record(record)  # what the log listener calls for each worker record
    assert collector.wait_for(
        lambda c: all(
            any(
                "GPU 1 failed: Xid 79 (worker process 1)" in (m.get("reason") or "")
                for m in c.of("status", s)
            )
            for s in "bd"
        ),
        30,
    )
    count = {s: len(collector.of("det", s)) for s in "bd"}
    assert collector.wait_for(lambda c: all(len(c.of("det", s)) >= count[s] + 2 for s in "bd"), 60)
    assert len(spawn_workers(os.getpid())) == 1


def test_a_worker_that_cannot_start_where_another_gpus_did_fails_its_gpu(
    supervisor_on_two_gpus,
):
    """The same config and model started on GPU 0, so an ``error`` from GPU 1's worker (what
    it reports when its engine cannot load: out of memory, CUDA unusable) is its GPU's: the
    streams move instead of failing. Here the report is handed to the supervisor as the
    report socket would (the CPU workers cannot fail on one label only)."""
    supervisor, collector = supervisor_on_two_gpus
    supervisor.start()
    assert collector.wait_for(lambda c: all(len(c.of("det", s)) >= 1 for s in "abcd"), 90)
    pid = supervisor._workers[1].process.pid  # reports of a replaced process are ignored
    supervisor._on_report(
        {"worker": 1, "pid": pid, "type": "error", "reason": "out of GPU memory loading it"}
    )
    assert collector.wait_for(
        lambda c: all(
            any(
                "GPU 1 failed: worker process 1 could not start (out of GPU memory" in r
                and "moving to GPU 0" in r
                for r in (m.get("reason") or "" for m in c.of("status", s))
            )
            for s in "bd"
        ),
        30,
    )
    assert not any(m["state"] == "failed" for m in collector.of("status"))
    count = {s: len(collector.of("det", s)) for s in "bd"}
    assert collector.wait_for(lambda c: all(len(c.of("det", s)) >= count[s] + 2 for s in "bd"), 60)


def test_a_reload_adds_a_stream_to_the_least_loaded_gpu_not_the_fewest_streams(
    supervisor_on_two_gpus,
):
    """GPU 0 runs a and c (bikes, 1280x720), GPU 1 b and d (carphone, 176x144): two streams
    each, but GPU 1's cost a twentieth of GPU 0's once measured. A stream added by a reload
    goes to GPU 1 (by count it would have gone to worker 0, the first of equals)."""
    from dataclasses import replace

    supervisor, collector = supervisor_on_two_gpus
    supervisor.start()

    def measured() -> bool:
        rows = supervisor.snapshot()["streams"]
        return all(r.get("width") and r["fps"] > 0 for r in rows)

    assert wait_until(measured, 90)
    config = supervisor.config
    extra = replace(config.streams[0], id="e")
    plan = supervisor.reload(replace(config, streams=(*config.streams, extra)))
    assert plan.added == ("e",)
    assert collector.wait_for(lambda c: len(c.of("det", "e")) >= 2, 60)
    gpus = supervisor.snapshot()["pipeline"]["gpus"]
    assert [(g["gpu"], g["streams"]) for g in gpus] == [(0, 2), (1, 3)]
