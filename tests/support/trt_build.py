"""A process that builds (or loads) one TensorRT engine on one GPU, for
tests/engines/test_tensorrt_shared_build.py. Apart from the test module because a ``spawn``
child imports the module its target lives in, and the test module starts CUDA at import:
this one must pin the GPU first."""

from __future__ import annotations

import os
from pathlib import Path


def build(gpu: int, model: str, cache: str, results) -> None:
    os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before CUDA starts in this process
    from engines import tensorrt_build
    from engines.options import EngineOptions

    options = EngineOptions(
        backend="tensorrt", max_batch=2, builder_optimization_level=0, cache_dir=Path(cache)
    )
    data, built = tensorrt_build.build_or_load(Path(model), options)
    digest = tensorrt_build.cache_entry(Path(model), options).digest
    results.put((gpu, built, len(data), digest))
