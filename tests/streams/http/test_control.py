"""The API's operations on a real pipeline that has not started yet (its engine loaded, its
streams not running): reads work, changes wait for the start (503), nothing is applied."""

from __future__ import annotations

import pytest

from streams.config import parse_config
from streams.http.control import Control, Unavailable
from streams.runtime.wiring import build_runtime
from tests.helpers import free_port


@pytest.fixture
def pipeline(assets):
    config = parse_config(
        {
            "streams": [{"id": "a", "url": "sample:bikes.mp4"}],
            "engine": {"backend": "onnxruntime", "max_batch": 2},
            "publish": {"endpoint": f"tcp://127.0.0.1:{free_port()}", "join_grace_ms": 0},
        }
    )
    runtime = build_runtime(config)
    try:
        yield runtime.pipeline
    finally:
        runtime.close()


def test_changes_wait_until_the_run_has_started(pipeline):
    control = Control(pipeline)
    assert [s["id"] for s in control.streams()] == ["a"]
    assert control.ready()[0] is False and control.ready()[1]["engine_loaded"] is False
    assert control.health()[0] is True
    with pytest.raises(Unavailable, match="still starting") as caught:
        control.add({"id": "b", "url": "sample:carphone_pristine.mp4"})
    assert caught.value.status == 503
    with pytest.raises(Unavailable):
        control.change("a", {"fps": 2})
    assert [s.id for s in pipeline.config.streams] == ["a"]  # nothing applied
