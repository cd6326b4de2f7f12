"""What FFmpeg and OpenCV say about bad inputs reaches the user only through logging, with the
stream's id, and in words (issue 11, item 2): a real ``python -m streams run`` over a truncated
MP4, a text file, a damaged MP4, a closed port and a web server that serves no video."""

import functools
import http.server
import re
import threading

import pytest

from tests.helpers import free_port, run_cli, write_config

LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) +\S+: ")
PASSWORD = "s3cret-pw"


@pytest.fixture(scope="module")
def bad_inputs(assets, tmp_path_factory):
    """Files that are not good video, also served over HTTP."""
    folder = tmp_path_factory.mktemp("bad")
    video = assets.videos["bikes.mp4"].read_bytes()
    (folder / "truncated.mp4").write_bytes(video[:200_000])  # the index (moov) is at the end
    (folder / "text.mp4").write_text("this is not a video\n" * 200)
    damaged = bytearray(video)
    damaged[len(video) // 3 : len(video) // 3 + 60_000] = bytes(range(256)) * 234 + bytes(96)
    (folder / "damaged.mp4").write_bytes(bytes(damaged))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield folder, server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def run(assets, bad_inputs, tmp_path_factory):
    folder, http_port = bad_inputs
    web = f"http://viewer:{PASSWORD}@127.0.0.1:{http_port}"
    streams = [
        {"id": "truncated", "url": str(folder / "truncated.mp4")},
        {"id": "text", "url": str(folder / "text.mp4")},
        {"id": "damaged", "url": str(folder / "damaged.mp4"), "pace": "none", "loop": False},
        {"id": "closed", "url": f"rtsp://admin:{PASSWORD}@127.0.0.1:{free_port()}/live"},
        {"id": "web-text", "url": f"{web}/text.mp4"},
        {"id": "web-missing", "url": f"{web}/nothing-here.mp4"},
        {"id": "good", "url": str(assets.videos["carphone_pristine.mp4"])},
    ]
    config = write_config(
        tmp_path_factory.mktemp("run") / "c.yaml",
        streams,
        free_port(),
        capture={"reconnect_initial_s": 1.0, "open_timeout_s": 5},
    )
    result = run_cli("run", str(config), "--duration", "5", "--log-level", "debug", timeout=120)
    assert result.returncode == 0, result.stderr
    return result, [s["id"] for s in streams]


def test_nothing_raw_reaches_stdout_or_stderr(run):
    result, ids = run
    assert result.stdout == ""
    table = re.compile(rf"^(summary:|stream +state|pipeline: |({'|'.join(ids)}) )")
    raw = [line for line in result.stderr.splitlines() if not LOG_LINE.match(line)]
    assert [line for line in raw if not table.match(line)] == [], result.stderr
    assert "[ WARN" not in result.stderr and PASSWORD not in result.stderr


def test_every_decoder_line_is_logged_with_its_stream(run):
    result, ids = run
    lines = [line for line in result.stderr.splitlines() if "FFmpeg: [" in line]
    assert lines, result.stderr
    streams = "|".join(ids)
    named = re.compile(rf"streams\.capture\.ffmpeg_log: stream ({streams}) \(.*\): FFmpeg: \[")
    assert [line for line in lines if not named.search(line)] == [], "\n".join(lines)
    assert any("stream truncated (" in line and "moov atom not found" in line for line in lines)


def test_errors_are_said_in_words_never_as_an_errno(run):
    result, _ = run
    assert "Errno" not in result.stderr and "1094995529" not in result.stderr, result.stderr

    def reason(stream_id: str) -> str:
        return next(
            line
            for line in result.stderr.splitlines()
            if LOG_LINE.match(line) and "WARNING" in line and f"stream {stream_id}:" in line
        )

    for stream_id in ("truncated", "text", "web-text"):
        assert "FFmpeg cannot read it as video (not a video, a damaged or truncated" in reason(
            stream_id
        )
    assert "nothing listens at that address and port" in reason("closed")
    assert "404 Not Found" in reason("web-missing")
    assert "FFmpeg said: [" in reason("truncated")
