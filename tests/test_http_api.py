"""The REST API of ``streams run`` (issue 14): a real run on the sample videos (CPU, ONNX
Runtime), a real HTTP client (httpx), real ZeroMQ subscribers, and ``streams ctl`` as a user
runs it. Bad input gets a clear 4xx whose text is the config file's own message."""

from __future__ import annotations

import os

import httpx
import pytest
import yaml

from streams.config import parse_config
from streams.errors import ConfigError
from tests.helpers import (
    Collector,
    cleanup,
    free_port,
    run_cli,
    start_cli,
    wait_until,
    write_config,
)

TOKEN = "test-token-0123456789abcdef"
PATHS = {
    "/metrics": {"get"},
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/api/config": {"get"},
    "/api/streams": {"get", "post"},
    "/api/streams/{stream_id}": {"get", "patch", "delete"},
    "/view/streams": {"get"},  # the browser view (streams/web), mounted by streams run
    "/view/{stream_id}.jpg": {"get"},
    "/view/{stream_id}.mjpg": {"get"},
}


class Run:
    """A background ``streams run`` with its HTTP server, a subscriber and a client."""

    def __init__(self, tmp_path, streams: list[dict], token: str | None = TOKEN, **sections):
        self.port, self.http_port = free_port(), free_port()
        http = {"port": self.http_port, **({"token": token} if token else {})}
        self.config_path = write_config(
            tmp_path / "c.yaml", streams, self.port, http=http, **sections
        )
        self.collector = Collector(f"tcp://127.0.0.1:{self.port}")
        self.process = start_cli(
            "run", str(self.config_path), "--no-live", env={"STREAMS_API_TOKEN": None}
        )
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}

    def wait_ready(self, timeout_s: float = 90) -> None:
        def ready() -> bool:
            try:
                return self.client.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        assert wait_until(ready, timeout_s, 0.2), self.process.output()

    def close(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.drain(timeout_s=15)
        cleanup(self.process, self.collector)


@pytest.fixture
def videos(assets):
    return str(assets.videos["bikes.mp4"]), str(assets.videos["carphone_pristine.mp4"])


@pytest.fixture
def run(tmp_path, videos):
    bikes, _ = videos
    started = Run(tmp_path, [{"id": "bikes", "url": bikes, "loop": True, "fps": 3}])
    try:
        started.wait_ready()
        yield started
    finally:
        started.close()


def _config_error(run: Run, entry: dict) -> str:
    """What the config file says of ``entry`` as its last stream."""
    raw = yaml.safe_load(run.config_path.read_text())
    raw["streams"].append(entry)
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=run.config_path.parent)
    return str(caught.value)


def test_list_add_patch_remove_with_a_real_subscriber(run, videos):
    _, carphone = videos
    client, auth = run.client, run.auth
    listed = client.get("/api/streams").json()
    assert [s["id"] for s in listed] == ["bikes"]
    assert listed[0]["state"] == "live" and listed[0]["fps"] == 3.0
    assert wait_until(  # live: its first frame decoded; processed soon after
        lambda: client.get("/api/streams").json()[0]["stats"]["processed"] > 0, 30
    )

    added = client.post(
        "/api/streams",
        json={"id": "car", "url": carphone, "loop": True, "fps": 2},
        headers=auth,
    )
    assert added.status_code == 201, added.text
    assert added.json()["id"] == "car" and added.json()["fps"] == 2.0
    assert run.collector.wait_for(lambda c: len(c.of("det", "car")) >= 3, 60)
    assert [s["id"] for s in client.get("/api/streams").json()] == ["bikes", "car"]
    assert "car" in [s["id"] for s in client.get("/api/config").json()["streams"]]
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and 'streams_frames_processed_total{stream="car"}' in (
        metrics.text
    )

    seen = len(run.collector.of("det", "car"))
    patched = client.patch("/api/streams/car", json={"fps": 6}, headers=auth)
    assert patched.status_code == 200, patched.text
    assert patched.json()["fps"] == 6.0
    assert client.get("/api/streams/car").json()["fps"] == 6.0
    assert run.collector.wait_for(lambda c: len(c.of("det", "car")) >= seen + 3, 60)
    # In place: no restart (no reconnecting), one live note, seq carries on, faster.
    statuses = [(m["state"], m.get("reason")) for m in run.collector.of("status", "car")]
    assert statuses == [("connecting", None), ("live", None), ("live", "changed in place (fps)")]
    seqs = [m["seq"] for m in run.collector.of("det", "car")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert wait_until(lambda: client.get("/api/streams/car").json()["stats"]["fps"] > 2.6, 30)

    removed = client.delete("/api/streams/car", headers=auth)
    assert removed.status_code == 200 and removed.json() == {"removed": "car"}
    assert run.collector.wait_for(
        lambda c: any(m["state"] == "ended" for m in c.of("status", "car")), 10
    )
    ended = [m for m in run.collector.of("status", "car") if m["state"] == "ended"]
    assert ended[0]["reason"] == "removed from the config"
    assert [s["id"] for s in client.get("/api/streams").json()] == ["bikes"]
    assert client.get("/api/streams/car").status_code == 404
    # bikes never stopped: its seq has no gap from start to now.
    bikes = [m["seq"] for m in run.collector.of("det", "bikes")]
    assert bikes == list(range(bikes[0], bikes[0] + len(bikes)))
    assert "api: removed stream car" in run.process.output()


def test_bad_input_gets_the_config_files_messages(run, videos):
    bikes, carphone = videos
    client, auth = run.client, run.auth

    def post(entry) -> httpx.Response:
        return client.post("/api/streams", json=entry, headers=auth)

    cases = [
        {"id": "cam", "url": "rtsp://"},  # invalid URL: no host
        {"id": "cam", "url": "ftp://camera/x"},  # a scheme nobody reads
        {"id": "cam", "url": str(run.config_path.parent / "missing.mp4")},
        {"id": "cam", "url": carphone, "fps": 0},
        {"id": "bad id!", "url": carphone},
        {"id": "cam", "url": carphone, "colour": "red"},
        {"id": "cam"},
    ]
    for entry in cases:
        answer = post(entry)
        assert answer.status_code == 422, (entry, answer.text)
        assert answer.json()["detail"] == _config_error(run, entry), entry
    assert post({"id": "cam", "url": "rtsp://"}).json()["detail"] == (
        "streams[1].url: 'rtsp://' has no host; expected e.g. rtsp://camera.local:554/stream"
    )

    duplicate = post({"id": "bikes", "url": carphone})
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == _config_error(run, {"id": "bikes", "url": carphone})

    not_json = client.post("/api/streams", content=b"{nope", headers=auth)
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["detail"]
    assert post(["not", "a", "mapping"]).json()["detail"] == (
        "streams[1]: expected a mapping of keys, got list ['not', 'a', 'mapping']"
    )

    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"fps": 2}} if method == "patch" else {}
        answer = client.request(method, "/api/streams/nope", headers=auth, **kwargs)
        assert answer.status_code == 404, (method, answer.text)
        assert answer.json()["detail"] == "no stream 'nope'; streams: bikes"

    url = client.patch("/api/streams/bikes", json={"url": carphone}, headers=auth)
    assert url.status_code == 422
    assert url.json()["detail"].startswith("streams[0].url: cannot change in place")
    zones = client.patch(
        "/api/streams/bikes",
        json={"zones": [{"name": "z", "points": [[0, 0], [1, 0], [1, 1]], "units": "fraction"}]},
        headers=auth,
    )
    assert zones.status_code == 422
    assert zones.json()["detail"].startswith(
        "streams[0].zones: zones and lines count tracked objects"
    )
    last = client.delete("/api/streams/bikes", headers=auth)
    assert last.status_code == 409 and "is the last one" in last.json()["detail"]

    missing = client.post("/api/streams", json={"id": "cam", "url": carphone})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["detail"].startswith("missing 'Authorization: Bearer <token>' header")
    wrong = client.delete("/api/streams/bikes", headers={"Authorization": "Bearer nottheone"})
    assert wrong.status_code == 401 and wrong.json()["detail"].startswith("wrong bearer token")
    basic = client.delete("/api/streams/bikes", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401

    # Nothing of that changed the run.
    assert [s["id"] for s in client.get("/api/streams").json()] == ["bikes"]
    assert run.process.poll() is None


def test_openapi_health_and_the_config_in_force_without_secrets(run):
    client = run.client
    spec = client.get("/openapi.json").json()
    assert {path: set(ops) for path, ops in spec["paths"].items()} == PATHS
    post = spec["paths"]["/api/streams"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "id",
        "url",
    ]
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["engine_loaded"] and ready["live"] == 1

    secret = "s3cret-pass"
    added = client.post(
        "/api/streams",
        json={"id": "cam", "url": f"rtsp://admin:{secret}@127.0.0.1:{free_port()}/x"},
        headers=run.auth,
    )
    assert added.status_code == 201, added.text
    config = client.get("/api/config")
    assert config.status_code == 200
    assert secret not in config.text and TOKEN not in config.text
    assert config.json()["http"]["token"] == "***"
    cam = next(s for s in config.json()["streams"] if s["id"] == "cam")
    assert cam["url"].startswith("rtsp://***@127.0.0.1:")
    assert secret not in client.get("/api/streams").text
    # A camera that refuses: the API says so, and readyz still holds (bikes is live).
    assert wait_until(
        lambda: client.get("/api/streams/cam").json()["state"] in ("reconnecting", "failed"), 30
    )
    assert client.get("/readyz").status_code == 200
    assert client.delete("/api/streams/cam", headers=run.auth).status_code == 200
    assert secret not in run.process.output()


def test_ctl_lists_adds_and_removes_and_says_why_in_one_line(run, videos):
    _, carphone = videos
    env = {**os.environ, "STREAMS_API_URL": run.url, "STREAMS_API_TOKEN": TOKEN}
    listed = run_cli("ctl", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split()[:2] == ["id", "state"]
    assert listed.stdout.splitlines()[1].split()[:2] == ["bikes", "live"]

    added = run_cli("ctl", "add", "car", carphone, "--fps", "2", "--loop", env=env)
    assert added.returncode == 0 and added.stdout.startswith("added car"), added.stderr
    assert run.collector.wait_for(lambda c: len(c.of("det", "car")) >= 1, 60)

    again = run_cli("ctl", "add", "car", carphone, env=env)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "error: 409: streams[2].id: duplicate stream id 'car'; ids must be unique"
    )
    nofile = run_cli("ctl", "add", "x", "/nope.mp4", env=env)
    assert nofile.returncode == 1
    assert nofile.stderr.strip() == (
        "error: 422: streams[2].url: file not found: /nope.mp4; expected a video file"
    )
    untokened = run_cli("ctl", "--token", "wrong-token-0123456789", "remove", "car", env=env)
    assert untokened.returncode == 1 and untokened.stderr.startswith("error: 401: wrong bearer")

    removed = run_cli("ctl", "remove", "car", env=env)
    assert removed.returncode == 0 and removed.stdout.strip() == "removed car", removed.stderr
    assert any(m["state"] == "ended" for m in run.collector.of("status", "car"))
    unknown = run_cli("ctl", "remove", "car", env=env)
    assert unknown.stderr.strip() == "error: 404: no stream 'car'; streams: bikes"

    nobody = run_cli("ctl", "--url", f"http://127.0.0.1:{free_port()}", "list", env=env)
    assert nobody.returncode == 1 and len(nobody.stderr.strip().splitlines()) == 1
    assert "Connection refused" in nobody.stderr
    bad_url = run_cli("ctl", "--url", "localhost:9108", "list", env=env)
    assert bad_url.returncode == 2 and "argument --url" in bad_url.stderr


def test_without_a_token_the_api_is_read_only(tmp_path, videos):
    bikes, carphone = videos
    run = Run(tmp_path, [{"id": "bikes", "url": bikes, "loop": True, "fps": 3}], token=None)
    try:
        run.wait_ready()
        assert run.client.get("/api/streams").status_code == 200
        for method, path in (
            ("post", "/api/streams"),
            ("patch", "/api/streams/bikes"),
            ("delete", "/api/streams/bikes"),
        ):
            kwargs = {} if method == "delete" else {"json": {"id": "c", "url": carphone}}
            answer = run.client.request(
                method, path, headers={"Authorization": f"Bearer {TOKEN}"}, **kwargs
            )
            assert answer.status_code == 403, (method, answer.text)
            assert answer.json()["detail"].startswith("the API is read-only: no token")
        assert "the API is read-only" in run.process.output()
        assert [s["id"] for s in run.client.get("/api/streams").json()] == ["bikes"]
    finally:
        run.close()


def test_streams_run_serves_the_browser_view_and_pictures_of_a_watched_stream(run):
    """The view is mounted on run's own HTTP server: the page, the streams' figures, and a
    picture of bikes, made by the pipeline because this request watches it."""
    client = run.client
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert wait_until(
        lambda: any(
            s["stream"] == "bikes" and s["state"] == "live"
            for s in client.get("/view/streams").json()
        ),
        30,
    )
    picture = client.get("/view/bikes.jpg", timeout=30)
    assert picture.status_code == 200, picture.text
    assert picture.headers["content-type"] == "image/jpeg"
    assert picture.content[:2] == b"\xff\xd8" and len(picture.content) > 1000
    assert client.get("/view/nosuch.jpg").status_code == 404
