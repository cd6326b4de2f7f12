"""Inference backends behind one contract (see engines/base.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from engines.base import Engine
from engines.options import EngineOptions

logger = logging.getLogger(__name__)


def create_engine(model_path: Path, options: EngineOptions) -> Engine:
    """Open ``model_path`` on the backend ``options.backend`` picks, logging the choice once."""
    backend = options.backend
    if backend == "auto":
        from engines.doctor import choose_backend

        backend, reason = choose_backend("auto")
        logger.info("engine.backend auto -> %s: %s", backend, reason)
    else:
        logger.info("engine.backend %s (set in the config)", backend)
    if backend == "tensorrt":
        from engines.tensorrt_engine import TensorRTEngine

        return TensorRTEngine(model_path, options)
    from engines.onnxruntime_engine import OnnxRuntimeEngine

    return OnnxRuntimeEngine(model_path, options)
