"""Shared fixtures."""

import pytest

pytest_plugins = ["tests.support.fixtures"]  # rtsp_server, rtsp_clip


@pytest.fixture(scope="session")
def assets():
    """The sample assets in the default cache ($STREAMS_CACHE or ~/.cache/streams).

    Fetched once per machine: later sessions find the cache verified and do no network access.
    """
    from streams.assets import fetch_assets

    return fetch_assets()
