"""Shared fixtures."""

import contextlib
import sys
import time

import pytest

pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.brokers",
]  # rtsp_server, rtsp_clip; broker


@pytest.fixture(scope="session")
def assets():
    """The sample assets in the default cache ($STREAMS_CACHE or ~/.cache/streams).

    Fetched once per machine: later sessions find the cache verified and do no network access.
    """
    from streams.assets import fetch_assets

    return fetch_assets()


@pytest.fixture
def progress(request):
    """``say(text)``: one line on the terminal at once, with pytest's output capture on and
    under ``-q`` (a long test shows it is alive in CI logs). Each line starts with the test's
    name and the seconds since the test began."""
    config = request.config
    capture = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    began = time.monotonic()

    def say(text: str) -> None:
        line = f"[{request.node.name} {time.monotonic() - began:5.1f}s] {text}"
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if reporter is not None:
                reporter.ensure_newline()
                reporter.write_line(line)
                reporter.flush()
            else:  # -p no:terminal
                print(line, file=sys.stderr, flush=True)

    return say
