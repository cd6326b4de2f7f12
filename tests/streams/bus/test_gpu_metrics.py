"""``/metrics`` with several GPUs: each GPU's fps, streams and state (streams/bus/metrics.py),
rendered by prometheus_client from a merged snapshot."""

from prometheus_client import CollectorRegistry, generate_latest

from streams.bus.metrics import PipelineCollector

PIPELINE = {"batches": 3, "published": 9, "publish_dropped": 0, "mean_batch": 2.0}


def _render(pipeline: dict) -> str:
    registry = CollectorRegistry()
    snapshot = {"uptime_s": 1.0, "streams": [], "pipeline": pipeline}
    registry.register(PipelineCollector(lambda: snapshot))
    return generate_latest(registry).decode()


def test_each_gpu_has_its_fps_streams_and_state():
    gpus = [
        {"gpu": 0, "state": "ok", "fps": 120.5, "streams": 4},
        {"gpu": 1, "state": "failed", "fps": 0.0, "streams": 0},
    ]
    text = _render({**PIPELINE, "gpus": gpus})
    assert 'streams_gpu_fps{gpu="0"} 120.5' in text
    assert 'streams_gpu_streams{gpu="0"} 4.0' in text
    assert 'streams_gpu_ok{gpu="0"} 1.0' in text
    assert 'streams_gpu_ok{gpu="1"} 0.0' in text


def test_one_device_has_no_gpu_metrics():
    assert "streams_gpu_" not in _render(PIPELINE)


def test_open_nvdec_sessions_are_a_gauge():
    assert "streams_nvdec_sessions 21.0" in _render({**PIPELINE, "nvdec_sessions": 21})
    assert "streams_nvdec_sessions 0.0" in _render(PIPELINE)  # a snapshot from before the field


def test_a_pipeline_snapshot_counts_the_open_sessions():
    from streams.capture import nvdec_sessions
    from streams.runtime.stats import PipelineStats

    before = PipelineStats().snapshot()["nvdec_sessions"]
    nvdec_sessions.opened()
    try:
        assert PipelineStats().snapshot()["nvdec_sessions"] == before + 1
    finally:
        nvdec_sessions.closed()
    assert PipelineStats().snapshot()["nvdec_sessions"] == before
