"""The browser view against a running pipeline on the sample videos (CPU, ONNX Runtime):
real ZeroMQ sockets, the hub, the HTTP server (uvicorn on loopback), an HTTP client and a
headless Chromium. One pipeline for the module: each test leaves nobody watching."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import zmq

from processors.annotate import PALETTE
from streams.config import parse_config
from streams.runtime.wiring import build_runtime
from streams.web.hub import Hub
from streams.web.server import ViewServer, view_app
from tests.helpers import free_port
from tests.support.browser import Browser, find_chromium
from tests.support.pictures import box_outlines, pictures_with_detections

PREVIEW_FPS = 2.0
STREAMS = ("bikes", "carphone")


class View:
    def __init__(self, runtime, hub: Hub, server: ViewServer, endpoint: str) -> None:
        self.runtime, self.pipeline, self.hub, self.server = runtime, runtime.pipeline, hub, server
        self.endpoint = endpoint

    @property
    def encoded(self) -> int:
        return self.pipeline.preview.encoded

    def subscribed_previews(self) -> set[bytes]:
        return {t for t in self.pipeline.publisher.subscribed if t.startswith(b"preview/")}


@pytest.fixture(scope="module")
def view(assets):
    port = free_port()
    config = parse_config(
        {
            "streams": [
                {"id": "bikes", "url": str(assets.videos["bikes.mp4"]), "loop": True, "fps": 8},
                {
                    "id": "carphone",
                    "url": str(assets.videos["carphone_pristine.mp4"]),
                    "loop": True,
                    "fps": 8,
                },
            ],
            "engine": {"backend": "onnxruntime", "max_batch": 2},
            "publish": {"endpoint": f"tcp://127.0.0.1:{port}", "stats_interval_s": 0.5},
            "metrics": {"port": 0},
            "preview": {"fps": PREVIEW_FPS},
        }
    )
    runtime = build_runtime(config)
    hub = server = None
    try:
        runtime.pipeline.start()
        hub = Hub([f"tcp://127.0.0.1:{port}"]).start()
        server = ViewServer(view_app(hub))
        view = View(runtime, hub, server, f"tcp://127.0.0.1:{port}")
        assert _until(
            lambda: {s["stream"] for s in hub.streams() if s["state"] == "live"} == set(STREAMS), 60
        ), hub.streams()
        yield view
    finally:
        if hub is not None:
            hub.close()
        if server is not None:
            server.close()
        runtime.pipeline.stop()
        runtime.close()


def _until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def _settled(view: View) -> None:
    """Nobody watches (a test before may have just left)."""
    assert _until(lambda: not view.subscribed_previews(), 3), view.subscribed_previews()


def test_nobody_watching_makes_no_picture_even_for_a_subscriber_to_everything(view):
    _settled(view)
    context = zmq.Context()
    try:
        everything = context.socket(zmq.SUB)
        everything.connect(view.endpoint)
        everything.subscribe(b"")
        before = view.encoded
        kinds: set[bytes] = set()
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            if everything.poll(100):
                kinds.add(everything.recv_multipart()[0].split(b"/")[0])
        assert view.encoded == before  # not one encode
        assert b"det" in kinds and b"preview" not in kinds
        assert view.pipeline.stream_stats["bikes"].processed > 0
    finally:
        context.destroy(linger=0)


def test_watching_makes_capped_pictures_and_the_last_viewer_leaving_stops_them(view):
    _settled(view)
    got: list[tuple[str, float]] = []
    second = view.hub.watch("bikes", lambda s, h, j: None)
    first = view.hub.watch("bikes", lambda s, h, j: got.append((s, time.monotonic())))
    try:
        assert _until(lambda: view.subscribed_previews() == {b"preview/bikes/"}, 3)
        assert _until(lambda: len(got) >= 2, 10), view.encoded
        began, count_before = time.monotonic(), len(got)
        time.sleep(3.0)
        rate = (len(got) - count_before) / (time.monotonic() - began)
        assert 0 < rate <= PREVIEW_FPS + 0.4  # the cap (the stream has 8 frames/s)
        assert {s for s, _ in got} == {"bikes"}  # carphone: nobody watches, none made
        view.hub.unwatch(second)  # one viewer left: still subscribed, still made
        time.sleep(0.3)
        assert view.subscribed_previews() == {b"preview/bikes/"}
        still = len(got)
        assert _until(lambda: len(got) > still, 5)
    finally:
        view.hub.unwatch(first)
        view.hub.unwatch(second)
    assert _until(lambda: not view.subscribed_previews(), 3)
    time.sleep(0.5)  # a picture already due may still come
    stopped_at = view.encoded
    time.sleep(2.0)
    assert view.encoded == stopped_at


def test_pictures_show_the_boxes_at_the_positions_of_that_frames_detections(view):
    _settled(view)
    pictures, dets = pictures_with_detections(view.endpoint, ["bikes"], 4, 20)
    assert pictures, "no picture of a frame with a detection in 20 s"
    for header, image in pictures:
        assert image.shape[:2] == (header["picture_height"], header["picture_width"])
        assert header["picture_width"] <= 640
    drawn, inside = box_outlines(pictures, dets)
    # Each box's outline is drawn in its class colour where that frame's det message put it
    # (a box may hide part of another: the median); a rectangle inside it is not drawn.
    assert np.median(drawn) > 0.6, drawn
    assert np.median(inside) < 0.15, inside


def test_mjpeg_and_jpeg_endpoints_and_their_errors(view):
    _settled(view)
    with httpx.Client(base_url=view.server.url, timeout=10) as client:
        assert client.get("/view/nosuch.mjpg").status_code == 404
        assert client.get("/view/nosuch.jpg").json()["detail"] == "unknown stream 'nosuch'"
        picture = client.get("/view/carphone.jpg")
        assert picture.headers["content-type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(picture.content, np.uint8), cv2.IMREAD_COLOR) is not None
        streams = {s["stream"]: s for s in client.get("/view/streams").json()}
        assert streams["bikes"]["state"] == "live" and streams["bikes"]["fps"] > 0
        with client.stream("GET", "/view/bikes.mjpg") as response:
            assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
            assert _until(lambda: view.subscribed_previews() == {b"preview/bikes/"}, 3)
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if data.count(b"--streamsframe") >= 3:
                    break
        parts = [p for p in data.split(b"--streamsframe")[1:3]]
        for part in parts:
            jpeg = part.split(b"\r\n\r\n", 1)[1].rstrip(b"\r\n")
            assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) is not None
    assert _until(lambda: not view.subscribed_previews(), 5)  # the client left


def test_the_pages_websocket_gives_watched_pictures_and_says_what_it_refuses(view):
    import json

    from websockets.sync.client import connect

    _settled(view)
    url = view.server.url.replace("http://", "ws://") + "/view/ws"
    with connect(url, open_timeout=10) as ws:
        figures = json.loads(ws.recv(timeout=10))
        assert figures["type"] == "streams"
        assert {s["stream"] for s in figures["streams"]} == set(STREAMS)
        ws.send("not json")
        replies = [ws.recv(timeout=10) for _ in range(3)]  # figures may come first
        assert any('"type": "error"' in r for r in replies if isinstance(r, str)), replies
        ws.send(json.dumps({"watch": ["carphone"]}))
        assert _until(lambda: view.subscribed_previews() == {b"preview/carphone/"}, 3)
        while isinstance(message := ws.recv(timeout=10), str):
            pass
        length = int.from_bytes(message[:2], "big")
        header = json.loads(message[2 : 2 + length])
        assert header["stream"] == "carphone" and message[2 + length :].startswith(b"\xff\xd8")
        ws.send(json.dumps({"watch": []}))  # the tiles left the screen
        assert _until(lambda: not view.subscribed_previews(), 3)
        ws.send(json.dumps({"watch": ["bikes"]}))
        assert _until(lambda: view.subscribed_previews() == {b"preview/bikes/"}, 3)
    assert _until(lambda: not view.subscribed_previews(), 5)  # closed: unwatched


def _palette_pixels(image: np.ndarray) -> int:
    """Pixels of the boxes' saturated colours (the raw video has few: the test checks)."""
    pixels = image.astype(int)
    near = np.zeros(image.shape[:2], bool)
    for colour in PALETTE:
        near |= np.abs(pixels - np.array(colour)).sum(axis=-1) < 100
    return int(near.sum())


TILES = """JSON.stringify([...document.querySelectorAll('.tile')].map(t => {
  const r = t.querySelector('.picture').getBoundingClientRect();
  const img = t.querySelector('img');
  return {stream: t.dataset.stream, x: r.x, y: r.y, w: r.width, h: r.height,
          loaded: !img.hidden && img.complete && img.naturalWidth > 0,
          seq: img.dataset.seq, detections: +(img.dataset.detections || 0),
          state: t.querySelector('.state').textContent};
}))"""


@pytest.mark.slow
@pytest.mark.skipif(find_chromium() is None, reason="no chromium (install_browser_deps.sh)")
def test_the_page_in_a_real_browser_shows_every_stream_with_its_boxes(view, tmp_path, assets):
    import json

    _settled(view)
    with Browser(1280, 900) as browser:
        browser.open(view.server.url + "/")
        ready = browser.wait_for(
            f"(() => {{ const t = {TILES.replace(chr(10), ' ')}; const a = JSON.parse(t);"
            " return a.length === 2 && a.every(x => x.loaded && x.state === 'live') ? t : ''; })()",
            30,
        )
        assert ready, browser.evaluate(TILES)
        assert _until(
            lambda: view.subscribed_previews() == {b"preview/bikes/", b"preview/carphone/"}, 3
        )
        # A screenshot while every tile's picture has detections (the header says how
        # many), the same pictures before and after it.
        for _ in range(40):
            tiles = json.loads(browser.evaluate(TILES))
            if all(t["detections"] > 0 for t in tiles):
                shot = browser.screenshot(tmp_path / "view-grid.png")
                if json.loads(browser.evaluate(TILES)) == tiles:
                    break
            time.sleep(0.25)
        else:
            pytest.fail(f"no moment with detections in every tile: {tiles}")
        print(f"screenshot: {tmp_path / 'view-grid.png'}")
        for tile in tiles:
            x, y, w, h = (round(tile[k]) for k in ("x", "y", "w", "h"))
            inside = shot[y : y + h, x : x + w]
            # The raw video in the same space has few of these colours: the boxes bring them.
            raw = _raw_frame(assets, tile["stream"], (w, h))
            assert _palette_pixels(inside) > max(150, 5 * _palette_pixels(raw)), tile
        header = shot[:40]
        assert _palette_pixels(header) == 0  # outside the tiles: the page's own colours

        # Click one: the large view watches that stream alone.
        browser.evaluate("document.querySelector('.tile[data-stream=\"carphone\"]').click()")
        assert browser.wait_for(
            "!document.getElementById('large').hidden && "
            "document.getElementById('large-picture').naturalWidth > 0",
            10,
        )
        assert _until(lambda: view.subscribed_previews() == {b"preview/carphone/"}, 3)
        assert browser.wait_for(
            "+document.querySelector('.tile[data-stream=\"carphone\"] img').dataset.detections",
            20,
        )
        big = browser.screenshot(tmp_path / "view-large.png")
        box = browser.evaluate(
            "JSON.stringify(document.getElementById('large-picture').getBoundingClientRect())"
        )
        r = json.loads(box)
        assert r["width"] > 900
        region = big[
            round(r["y"]) : round(r["y"] + r["height"]), round(r["x"]) : round(r["x"] + r["width"])
        ]
        assert _palette_pixels(region) > 300
    assert _until(lambda: not view.subscribed_previews(), 5)  # the browser left


def _raw_frame(assets, stream: str, size: tuple[int, int]) -> np.ndarray:
    name = {"bikes": "bikes.mp4", "carphone": "carphone_pristine.mp4"}[stream]
    capture = cv2.VideoCapture(str(Path(assets.videos[name])))
    frames = []
    for _ in range(30):
        ok, frame = capture.read()
        if ok:
            frames.append(frame)
    capture.release()
    return cv2.resize(frames[len(frames) // 2], size)
