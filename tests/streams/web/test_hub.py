"""The view's hub over several publishers (nodes): real PUB/XPUB sockets on loopback."""

from __future__ import annotations

import time

import numpy as np

from streams.bus.messages import encode, preview_payload, stats_message, status_message
from streams.bus.publisher import Publisher
from streams.config import PublishConfig
from streams.runtime.stats import PipelineStats
from streams.web.hub import Hub, local_endpoint


def _until(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _picture(stream: str, seq: int) -> bytes:
    jpeg = b"\xff\xd8" + bytes(np.arange(64, dtype=np.uint8)) + b"\xff\xd9"
    return preview_payload(
        stream_id=stream,
        seq=seq,
        pts_s=0.0,
        capture_wall_s=time.time(),
        source_hw=(720, 1280),
        picture_hw=(360, 640),
        detections=0,
        jpeg=jpeg,
    )


def test_the_hub_merges_several_nodes_and_subscribes_pictures_only_while_watched():
    nodes = [
        Publisher(PublishConfig(endpoint="tcp://127.0.0.1:0", join_grace_ms=0), PipelineStats())
        for _ in range(2)
    ]
    hub = Hub([node.endpoint for node in nodes]).start()
    try:
        # Each node's streams: status and stats reach the one view.
        assert _until(lambda: all(b"status/" in n.subscribed for n in nodes))
        for node, stream in zip(nodes, ("a", "b")):
            node.publish(f"status/{stream}/", status_message(stream, "live", width=1280))
            entry = {
                "stream": stream,
                "state": "live",
                "fps": 9.5,
                "p50_ms": 20.0,
                "p99_ms": 41.0,
                "dropped": 3,
                "processed": 100,
            }
            node.publish_encoded([(b"stats/", encode(stats_message([entry], {}, 1.0)))])
        assert _until(lambda: {s["stream"] for s in hub.streams()} == {"a", "b"})
        assert _until(lambda: all(s["fps"] == 9.5 for s in hub.streams()))
        view = {s["stream"]: s for s in hub.streams()}["b"]
        assert (view["state"], view["p99_ms"], view["dropped"]) == ("live", 41.0, 3)

        # Nobody watches: no node is asked for pictures.
        assert not any(t.startswith(b"preview/") for n in nodes for t in n.subscribed)
        got = []
        token = hub.watch("b", lambda stream, header, jpeg: got.append((stream, header["seq"])))
        assert _until(lambda: all(b"preview/b/" in n.subscribed for n in nodes))
        nodes[1].publish_encoded([(b"preview/b/", _picture("b", 7))])
        assert _until(lambda: got == [("b", 7)])
        assert hub.latest("b")[0]["seq"] == 7 and hub.watched() == {"b": 1}
        hub.unwatch(token)
        assert _until(lambda: not any(b"preview/b/" in n.subscribed for n in nodes))
        assert hub.watched() == {} and hub.latest("b") is None
    finally:
        hub.close()
        for node in nodes:
            node.close()


def test_a_wildcard_bind_is_reached_on_loopback():
    assert local_endpoint("tcp://*:5555") == "tcp://127.0.0.1:5555"
    assert local_endpoint("tcp://0.0.0.0:7") == "tcp://127.0.0.1:7"
    assert local_endpoint("tcp://[::]:7") == "tcp://[::1]:7"
    assert local_endpoint("ipc:///tmp/x") == "ipc:///tmp/x"
    assert local_endpoint("tcp://10.0.0.2:5555") == "tcp://10.0.0.2:5555"


def test_closing_the_hub_ends_open_pages_and_mjpeg_clients_so_the_server_stops_at_once(caplog):
    import threading

    import httpx
    from websockets.sync.client import connect

    from streams.web.server import ViewServer, view_app

    node = Publisher(PublishConfig(endpoint="tcp://127.0.0.1:0", join_grace_ms=0), PipelineStats())
    hub = Hub([node.endpoint]).start()
    server = None
    try:
        assert _until(lambda: b"status/" in node.subscribed)
        node.publish("status/a/", status_message("a", "live"))
        assert _until(lambda: hub.streams() != [])
        server = ViewServer(view_app(hub))
        ended = threading.Event()

        def read_mjpeg() -> None:
            with httpx.stream("GET", server.url + "/view/a.mjpg", timeout=30) as response:
                for _ in response.iter_bytes():
                    pass
            ended.set()

        threading.Thread(target=read_mjpeg, daemon=True).start()
        with connect(server.url.replace("http://", "ws://") + "/view/ws") as ws:
            ws.send('{"watch": ["a"]}')
            assert _until(lambda: hub.watched() == {"a": 2})
            began = time.monotonic()
            hub.close()
            server.close()
            assert time.monotonic() - began < 2.0
        assert ended.wait(2)  # the MJPEG response ended, it was not cut off
        assert hub.watched() == {}
        assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    finally:
        hub.close()
        if server is not None:
            server.close()
        node.close()
