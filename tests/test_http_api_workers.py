"""The REST API with worker processes (streams/scale): an added stream goes to a worker with
room, or, every worker full, to a new worker process; a worker whose streams were all removed
leaves, and its slot takes the next added stream. Real processes, HTTP and ZeroMQ."""

from __future__ import annotations

import pytest

from tests.test_http_api import Run
from tests.test_workers import _worker_pids

pytestmark = pytest.mark.slow


def test_added_streams_fill_workers_with_room_then_start_a_new_one(assets, tmp_path):
    bikes, carphone = str(assets.videos["bikes.mp4"]), str(assets.videos["carphone_pristine.mp4"])
    streams = [
        {"id": "a", "url": bikes, "loop": True, "fps": 3},
        {"id": "b", "url": carphone, "loop": True, "fps": 3},
    ]
    run = Run(
        tmp_path,
        streams,
        engine={"threads": 1},
        workers={"processes": 2, "streams_per_process": 1},
    )
    try:
        run.wait_ready(120)
        assert len(_worker_pids(run.process.pid, 2)) == 2
        added = run.client.post(
            "/api/streams", json={"id": "c", "url": bikes, "loop": True, "fps": 3}, headers=run.auth
        )
        assert added.status_code == 201, added.text
        assert run.collector.wait_for(lambda c: len(c.of("det", "c")) >= 2, 90), (
            run.process.output()
        )
        assert "worker 2 (pid" in run.process.output()  # every worker was full: a third one
        assert len(_worker_pids(run.process.pid, 3)) == 3
        stats = run.collector.of("stats")[-1]
        assert stats["pipeline"]["processes"] == 3

        removed = run.client.delete("/api/streams/c", headers=run.auth)
        assert removed.status_code == 200, removed.text
        assert run.collector.wait_for(
            lambda c: any(m["state"] == "ended" for m in c.of("status", "c")), 15
        )
        assert run.collector.wait_for(lambda c: len(_live_children(run.process.pid)) == 2, 20), (
            "worker 2, left with no streams, did not exit"
        )

        again = run.client.post(
            "/api/streams",
            json={"id": "d", "url": carphone, "loop": True, "fps": 3},
            headers=run.auth,
        )
        assert again.status_code == 201, again.text
        assert run.collector.wait_for(lambda c: len(c.of("det", "d")) >= 2, 90)
        output = run.process.output()
        assert "worker 3 (pid" not in output  # worker 2's slot took it
        assert output.count("worker 2 (pid") == 2, output
        for stream in ("a", "b"):  # untouched throughout
            seqs = [m["seq"] for m in run.collector.of("det", stream)]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), stream
    finally:
        run.close()


def _live_children(pid: int) -> list[int]:
    try:
        return _worker_pids(pid, 1, timeout_s=0.5)
    except AssertionError:
        return []
