"""A pipeline whose every batch fails gives up, instead of publishing nothing forever."""

from __future__ import annotations

import streams.runtime.pipeline
from streams.config import load_config
from streams.runtime.wiring import build_runtime
from tests.helpers import free_port, write_config

# carphone_pristine.mp4: 120 frames (4 s at 29.97 fps), half as many as bikes.mp4, which made
# the lossless run below take 15 s on 2 cores.
CLIP, CLIP_FRAMES = "carphone_pristine.mp4", 120


def run_clip(assets, tmp_path, loop: bool):
    """The clip through a real ONNX Runtime pipeline until it ends or gives up."""
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            [
                {"id": "cam", "url": str(assets.videos[CLIP]), "loop": loop, "pace": "none"},
            ],
            free_port(),
            engine={"max_batch": 1, "threads": 1},
        )
    )
    runtime = build_runtime(config)
    try:
        runtime.pipeline.start()
        reason = runtime.pipeline.wait(duration_s=300)
        runtime.pipeline.stop()
    finally:
        runtime.close()
    return reason, runtime.pipeline


def test_twenty_failed_batches_in_a_row_stop_the_pipeline(assets, tmp_path, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("an illegal memory access was encountered")  # a sticky CUDA error

    monkeypatch.setattr(streams.runtime.pipeline, "decode_yolo_batch", broken)
    reason, pipeline = run_clip(assets, tmp_path, loop=True)
    assert reason.startswith("failed: 20 batches in a row failed"), reason
    assert "illegal memory access" in pipeline.fatal
    assert pipeline.stream_stats["cam"].processed == 0


def test_a_few_failed_batches_are_skipped(assets, tmp_path, monkeypatch):
    real, failures, calls = streams.runtime.pipeline.decode_yolo_batch, 5, {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= failures:
            raise RuntimeError("one bad batch")
        return real(*args, **kwargs)

    monkeypatch.setattr(streams.runtime.pipeline, "decode_yolo_batch", flaky)
    reason, pipeline = run_clip(assets, tmp_path, loop=False)
    assert reason == "all streams finished"
    assert pipeline.fatal is None
    assert pipeline.stream_stats["cam"].processed == CLIP_FRAMES - failures
