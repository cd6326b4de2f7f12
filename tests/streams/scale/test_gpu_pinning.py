"""Worker processes on several GPUs: each sees its GPU alone, at least one per GPU, and the
merged ``stats`` carries figures per GPU (streams/scale/worker_process.py, supervisor.py,
merge.py). Pure parts, no processes; the processes are tests/streams/scale/test_gpu_failover.py."""

from __future__ import annotations

import pytest

from streams.config import parse_config
from streams.scale.merge import gpu_figures
from streams.scale.supervisor import resolve_gpus, resolve_processes
from streams.scale.worker_process import pin_gpu, shard_config


@pytest.mark.parametrize(
    ("inherited", "gpu", "visible"),
    [
        (None, 0, "0"),
        (None, 3, "3"),
        ("2,3", 1, "3"),  # the supervisor's cuda:1 is the second GPU it was given
        ("GPU-aaaa, GPU-bbbb", 0, "GPU-aaaa"),  # UUIDs too
        ("5", 0, "5"),
    ],
)
def test_pin_gpu_shows_a_worker_one_gpu_numbered_as_the_supervisor_numbers_them(
    inherited, gpu, visible
):
    environ = {} if inherited is None else {"CUDA_VISIBLE_DEVICES": inherited}
    assert pin_gpu(gpu, environ) == visible
    assert environ["CUDA_VISIBLE_DEVICES"] == visible


def test_a_pinned_workers_engine_runs_on_the_only_gpu_it_sees():
    config = parse_config(
        {
            "streams": [{"id": i, "url": "rtsp://h/x"} for i in "abc"],
            "engine": {"device": [1, 2]},
        }
    )
    pinned = shard_config(config, ["b"], "ipc:///tmp/bus", gpu=2)
    assert (pinned.engine.device, pinned.engine.devices) == ("cuda:0", ())
    assert [s.id for s in pinned.streams] == ["b"]
    unpinned = shard_config(config, ["b"], "ipc:///tmp/bus")
    assert unpinned.engine == config.engine


def test_at_least_one_worker_per_gpu():
    config = parse_config(
        {
            "streams": [{"id": i, "url": "rtsp://h/x"} for i in "abc"],
            "workers": {"processes": 1},
        }
    )
    assert resolve_processes(config)[0] == 1
    count, why = resolve_processes(config, [0, 1, 2, 3])
    assert count == 4 and "at least one per GPU" in why
    assert resolve_processes(config, [0])[0] == 1
    five = parse_config(
        {
            "streams": [{"id": f"s{i}", "url": "rtsp://h/x"} for i in range(8)],
            "workers": {"processes": 5},
        }
    )
    count, why = resolve_processes(five, [0, 1])
    assert count == 6 and "as many on each of the 2 GPUs" in why  # what worker_gpus starts


def test_a_gpu_list_on_a_host_without_tensorrt_runs_as_one_device():
    """Here (CI, no TensorRT) ``auto`` is ONNX Runtime on the CPU: the list means nothing."""
    pytest.importorskip("onnxruntime")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed: tests/test_gpu_devices.py covers this host")
    except ImportError:
        pass
    config = parse_config(
        {"streams": [{"id": "a", "url": "rtsp://h/x"}], "engine": {"device": "all"}}
    )
    assert resolve_gpus(config) is None
    assert resolve_gpus(parse_config({"streams": [{"id": "a", "url": "rtsp://h/x"}]})) is None


def test_gpu_figures_sum_each_gpus_workers_and_name_a_failed_one():
    def snap(fps: list[float], batches: int, mean: float, inference: float | None) -> dict:
        return {
            "streams": [{"stream": f"s{i}", "fps": f} for i, f in enumerate(fps)],
            "pipeline": {"batches": batches, "mean_batch": mean, "inference_p50_ms": inference},
        }

    workers = [
        {"gpu": 0, "name": "NVIDIA H200", "streams": ["a", "b"]},
        {"gpu": 0, "name": "NVIDIA H200", "streams": ["c"]},
        {"gpu": 1, "name": None, "streams": []},
        {"gpu": 2, "name": None, "streams": ["d"]},
    ]
    snapshots = [snap([30, 30], 10, 2.0, 4.0), snap([25], 30, 1.0, 6.0), {}, {}]
    figures = gpu_figures([0, 1, 2], workers, snapshots, {1: "GPU 1 failed: Xid 79 (worker 2)"})
    assert figures[0] == {
        "gpu": 0,
        "name": "NVIDIA H200",
        "state": "ok",
        "processes": 2,
        "streams": 3,
        "fps": 85.0,
        "batches": 40,
        "mean_batch": 1.25,  # 50 frames in 40 batches
        "inference_p50_ms": 6.0,
    }
    assert figures[1]["state"] == "failed" and figures[1]["reason"].endswith("(worker 2)")
    assert (figures[1]["streams"], figures[1]["fps"], figures[1]["batches"]) == (0, 0.0, 0)
    assert figures[2]["name"] is None and figures[2]["inference_p50_ms"] is None
    assert "reason" not in figures[0] and figures[2]["streams"] == 1
