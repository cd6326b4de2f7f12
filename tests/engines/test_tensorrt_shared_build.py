"""One TensorRT build per GPU model: processes that want the same engine at once (workers of
two identical GPUs) build it once; the others wait for it and load it (engines/files.py's
``file_lock`` in ``tensorrt_build.build_or_load``). Marked ``gpu``: skipped without TensorRT
and a GPU. On a host with several GPUs of one model, the processes are pinned one per GPU
(``CUDA_VISIBLE_DEVICES``), as the workers are."""

from __future__ import annotations

import multiprocessing

import pytest

pytestmark = pytest.mark.gpu

pytest.importorskip("tensorrt", reason="TensorRT is not installed")
pytest.importorskip("cuda.bindings", reason="cuda-python is not installed")

from engines import cuda  # noqa: E402
from streams.errors import EngineError  # noqa: E402

try:
    _GPUS = cuda.device_count()
except EngineError:
    _GPUS = 0
if _GPUS == 0:
    pytest.skip("no CUDA GPU visible", allow_module_level=True)


def test_processes_wanting_one_engine_build_it_once(tmp_path):
    from tests.engines.test_tensorrt import make_tiny_onnx
    from tests.support.trt_build import build

    model = make_tiny_onnx(tmp_path / "tiny.onnx")
    names = {cuda.device_info(i).name for i in range(_GPUS)}
    gpus = list(range(_GPUS)) if len(names) == 1 else [0]  # GPUs of one model only
    gpus = (gpus * 3)[: max(3, len(gpus))]  # at least three processes
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=build, args=(g, str(model), str(tmp_path / "cache"), results))
        for g in gpus
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(300)
    assert [p.exitcode for p in processes] == [0] * len(processes)
    rows = [results.get(timeout=5) for _ in processes]
    assert sum(built for _, built, _, _ in rows) == 1, rows  # one build
    assert len({digest for *_, digest in rows}) == 1  # one key for every GPU of the model
    assert len(list((tmp_path / "cache").glob("tiny-*.engine"))) == 1
