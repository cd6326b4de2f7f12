"""The view over worker processes (CPU): `streams run` with two workers behind the relay; a
watched stream's pictures come from the worker that has its frames, and stop when unwatched."""

from __future__ import annotations

import time

import pytest
import zmq

from streams.web.hub import Hub
from tests.helpers import cleanup, free_port, start_cli, write_config


def _until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


@pytest.mark.slow
def test_pictures_come_through_the_relay_from_each_worker_only_while_watched(assets, tmp_path):
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [
            {"id": "bikes", "url": str(assets.videos["bikes.mp4"]), "loop": True, "fps": 5},
            {
                "id": "carphone",
                "url": str(assets.videos["carphone_pristine.mp4"]),
                "loop": True,
                "fps": 5,
            },
        ],
        port,
        workers={"processes": 2},
    )
    process = start_cli("run", str(config), "--no-live")
    hub = Hub([f"tcp://127.0.0.1:{port}"]).start()
    context = zmq.Context()
    got: list[str] = []
    try:
        assert _until(lambda: sum(s["state"] == "live" for s in hub.streams()) == 2, 120), (
            process.output()[-3000:]
        )
        tokens = [
            hub.watch(s, lambda stream, h, j: got.append(stream)) for s in ("bikes", "carphone")
        ]
        assert _until(lambda: {"bikes", "carphone"} <= set(got), 30), process.output()[-3000:]
        for token in tokens:
            hub.unwatch(token)
        time.sleep(1.0)  # the unsubscriptions reach the workers; a picture in flight lands
        everything = context.socket(zmq.SUB)
        everything.connect(f"tcp://127.0.0.1:{port}")
        everything.subscribe(b"")
        seen: set[bytes] = set()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if everything.poll(100):
                seen.add(everything.recv_multipart()[0].split(b"/")[0])
        assert b"det" in seen and b"preview" not in seen
    finally:
        context.destroy(linger=0)
        hub.close()
        cleanup(process)
