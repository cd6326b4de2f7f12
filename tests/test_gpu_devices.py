"""``engine.device`` as a list or ``all`` on real GPUs (GPU host only; marked ``gpu``).

On a one-GPU host: a list of one GPU runs pinned workers (``CUDA_VISIBLE_DEVICES`` in each
worker's environment) with NVDEC and TensorRT, and a GPU that is not there is an error naming
``engine.device[i]``. On a host with two GPUs or more, also: ``all`` spreads the streams over
every GPU (each GPU's figures in ``stats``), and a GPU whose worker is killed past the budget
has its streams moved to the others.

    python -m pytest -q -m gpu tests/test_gpu_devices.py
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from streams.config import parse_config
from streams.errors import StreamsError
from tests.helpers import Collector, cleanup, free_port, spawn_workers, start_cli, write_config
from tests.test_gpu_pipeline import tensorrt_ready, trt_engine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(tensorrt_ready() is not None, reason=str(tensorrt_ready())),
]


def _gpu_count() -> int:
    from engines.cuda import device_count

    return device_count()


def _compute_apps(pids: list[int]) -> dict[int, set[int]] | None:
    """pid -> the GPUs (nvidia-smi's numbers) it holds a CUDA context on; None without
    nvidia-smi, or where it lists none of ``pids`` (in a container it may show none, or the
    host's pids)."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    query = ["nvidia-smi", "--format=csv,noheader"]
    gpus = subprocess.run(
        [*query, "--query-gpu=index,uuid"], capture_output=True, text=True, check=True
    ).stdout
    index = {u.strip(): int(i) for i, u in (line.split(",") for line in gpus.splitlines())}
    apps = subprocess.run(
        [*query, "--query-compute-apps=pid,gpu_uuid"], capture_output=True, text=True, check=True
    ).stdout
    held: dict[int, set[int]] = {}
    for line in apps.splitlines():
        pid, uuid = (v.strip() for v in line.split(","))
        held.setdefault(int(pid), set()).add(index[uuid])
    return held if any(pid in held for pid in pids) else None


def _streams(assets, count: int) -> list[dict]:
    videos = [assets.videos["bikes.mp4"], assets.videos["carphone_pristine.mp4"]]
    return [
        {"id": f"s{i}", "url": str(videos[i % 2]), "loop": True, "fps": 10} for i in range(count)
    ]


def test_resolve_gpus_on_this_host():
    from streams.scale.supervisor import resolve_gpus

    count = _gpu_count()
    every = parse_config(
        {"streams": [{"id": "a", "url": "rtsp://h/x"}], "engine": {"device": "all"}}
    )
    assert resolve_gpus(every) == list(range(count))
    beyond = parse_config(
        {"streams": [{"id": "a", "url": "rtsp://h/x"}], "engine": {"device": [0, count]}}
    )
    with pytest.raises(StreamsError, match=rf"^engine\.device\[1\]: no GPU {count} \(CUDA sees"):
        resolve_gpus(beyond)


def test_a_list_of_one_gpu_runs_pinned_workers_on_nvdec_and_tensorrt(assets, tmp_path):
    port = free_port()
    config = write_config(
        tmp_path / "one.yaml",
        _streams(assets, 4),
        port,
        engine={**trt_engine(tmp_path), "device": [0]},
        workers={"processes": 2},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")
    try:
        assert collector.wait_for(
            lambda c: all(len(c.of("det", f"s{i}")) >= 5 for i in range(4)), 300
        ), process.output()[-3000:]
        workers = spawn_workers(process.pid)
        assert len(workers) == 2
        held = _compute_apps(workers)
        if held is not None:  # each worker has its context on GPU 0, the supervisor none
            assert all(held.get(pid) == {0} for pid in workers), held
            assert process.pid not in held, held
        assert process.drain(timeout_s=30)[0] == 0, process.output()[-3000:]
    finally:
        cleanup(process, collector)
    log = process.output()
    for worker in range(2):
        assert f"worker {worker}: GPU 0 only (CUDA_VISIBLE_DEVICES=0)" in log, log[-3000:]
    assert "decoder auto -> nvdec: NVDEC on cuda:0" in log, log[-3000:]  # in each worker


def _two_gpus() -> bool:
    return tensorrt_ready() is None and _gpu_count() >= 2


@pytest.mark.skipif(not _two_gpus(), reason="needs two GPUs or more")
def test_all_spreads_streams_over_every_gpu_and_a_failed_gpu_moves_them(assets, tmp_path):
    count = _gpu_count()
    port = free_port()
    config = write_config(
        tmp_path / "all.yaml",
        _streams(assets, 2 * count),
        port,
        engine={**trt_engine(tmp_path), "device": "all"},
        workers={"processes": count, "gpu_restart_budget": 0},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")
    ids = [f"s{i}" for i in range(2 * count)]
    try:

        def every_gpu_works(c) -> bool:
            stats = c.of("stats")
            if not stats or "gpus" not in stats[-1]["pipeline"]:
                return False
            gpus = stats[-1]["pipeline"]["gpus"]
            return len(gpus) == count and all(g["fps"] > 0 and g["name"] for g in gpus)

        assert collector.wait_for(every_gpu_works, 300), process.output()[-3000:]
        gpus = collector.of("stats")[-1]["pipeline"]["gpus"]
        assert [g["streams"] for g in gpus] == [2] * count
        assert len({g["name"] for g in gpus}) >= 1
        log = process.output()
        for worker in range(count):  # one worker per GPU, in order
            assert f"worker {worker}: GPU {worker} only (CUDA_VISIBLE_DEVICES={worker})" in log
        workers = spawn_workers(process.pid)
        held = _compute_apps(workers)
        if held is not None:  # each worker on one GPU only, all GPUs busy
            assert all(len(held.get(pid, ())) == 1 for pid in workers), held
            assert set().union(*(held[pid] for pid in workers)) == set(range(count)), held
        # One engine build for identical GPUs: one file per GPU model in the cache.
        models = {g["name"] for g in gpus}
        assert len(list((tmp_path / "engines").glob("*.engine"))) == len(models)

        # GPU 1's worker dies once: with a budget of 0 the GPU is out, its streams move.
        victim = sorted(workers)[1]  # worker 1 (started after worker 0), on GPU 1
        if held is not None:
            victim = next(pid for pid in workers if held[pid] == {1})
        os.kill(victim, signal.SIGKILL)
        assert collector.wait_for(
            lambda c: any(
                "GPU 1 failed" in (m.get("reason") or "") and "moving to GPU" in m["reason"]
                for m in c.of("status")
            ),
            60,
        ), process.output()[-3000:]
        seen = {s: len(collector.of("det", s)) for s in ids}
        assert collector.wait_for(
            lambda c: all(len(c.of("det", s)) >= seen[s] + 5 for s in ids), 120
        ), process.output()[-3000:]
        time.sleep(2)
        gpus = {g["gpu"]: g for g in collector.of("stats")[-1]["pipeline"]["gpus"]}
        assert gpus[1]["state"] == "failed" and gpus[1]["streams"] == 0
        assert sum(g["streams"] for g in gpus.values()) == 2 * count
        assert process.drain(timeout_s=30)[0] == 0, process.output()[-3000:]
    finally:
        cleanup(process, collector)


def test_build_engine_builds_once_per_gpu_model(tmp_path):
    from engines.cuda import device_info
    from tests.helpers import run_cli

    config = write_config(
        tmp_path / "build.yaml",
        [{"id": "a", "url": "rtsp://127.0.0.1/x"}],
        free_port(),
        engine={**trt_engine(tmp_path), "device": "all"},
    )
    result = run_cli("build-engine", str(config), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    models = {(device_info(g).name, device_info(g).compute_capability) for g in range(_gpu_count())}
    lines = [line for line in result.stdout.splitlines() if line.startswith("engine: ")]
    assert len(lines) == len(models) == len(list((tmp_path / "engines").glob("*.engine")))


@pytest.mark.skipif(_two_gpus(), reason="a one-GPU host's refusal")
def test_bench_devices_on_one_gpu_refuses_in_one_line(tmp_path):
    from tests.helpers import run_cli

    config = write_config(
        tmp_path / "b.yaml",
        [{"id": "a", "url": "sample:bikes.mp4"}],
        free_port(),
        engine=trt_engine(tmp_path),
    )
    result = run_cli("bench", str(config), "--gpu", "--devices", "0,1", timeout=600)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "--devices: engine.device[1]: no GPU 1 (CUDA sees 1" in result.stderr
    assert "Traceback" not in result.stderr
