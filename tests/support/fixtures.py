"""pytest fixtures for the real RTSP server (see ``tests/support/rtsp.py``).

Use from ``tests/conftest.py`` with ``pytest_plugins = ["tests.support.fixtures"]`` or
``from tests.support.fixtures import rtsp_clip, rtsp_server  # noqa: F401``.

    def test_reconnect(rtsp_server):
        server = rtsp_server(path="cam1")          # started; the default clip
        other = rtsp_server(my_clip, start=False)   # not started yet; .url is already known
        server.kill(); server.restart()

Both skip the test (with the reason) where the GStreamer RTSP server or ffmpeg is missing.
``rtsp_clip`` encodes ``$STREAMS_TEST_VIDEO`` if set, else FFmpeg's synthetic test pattern.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.rtsp import RtspServer, make_test_clip, rtsp_available


def _skip_or_fail(reason: str) -> None:
    """Skip where the RTSP server is missing, but fail where it must be there (CI)."""
    if os.environ.get("STREAMS_REQUIRE_RTSP"):
        pytest.fail(f"STREAMS_REQUIRE_RTSP is set but the RTSP server is unusable: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def rtsp_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10 s H.264 baseline clip, 25 fps, a keyframe every second, made once per session."""
    if (reason := rtsp_available()) is not None:
        _skip_or_fail(reason)
    src = os.environ.get("STREAMS_TEST_VIDEO")
    return make_test_clip(Path(src) if src else None, tmp_path_factory.mktemp("rtsp") / "clip.mp4")


@pytest.fixture
def rtsp_server(request: pytest.FixtureRequest) -> Iterator[Callable[..., RtspServer]]:
    """A factory ``(file=None, port=None, path="cam", start=True) -> RtspServer``; every server
    it made is stopped (SIGKILL) at teardown, frozen ones included."""
    if (reason := rtsp_available(ffmpeg=False)) is not None:
        _skip_or_fail(reason)
    servers: list[RtspServer] = []

    def make(
        file: Path | None = None, port: int | None = None, path: str = "cam", start: bool = True
    ) -> RtspServer:
        if file is None:
            file = request.getfixturevalue("rtsp_clip")
        server = RtspServer(file, port=port, path=path)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()
