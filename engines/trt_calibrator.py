"""Implicit INT8: TensorRT's own calibrators (IInt8EntropyCalibrator2, IInt8MinMaxCalibrator).

TensorRT 8.6 and 10 have them (10.1 deprecates them); 11 removes them, which
:func:`available` tells by feature, not by version. The calibrator hands TensorRT
calibration batches in one device buffer and keeps TensorRT's calibration table in a file
beside the engine cache, keyed like the engine (model sha256, TensorRT version, GPU, the
calibration set's identity, the calibrator), so a rebuild with another batch profile or
builder level reads the table instead of the frames.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from engines import cuda
from engines.calibration import CalibrationSet, Progress
from engines.errors import EngineError
from engines.files import atomic_write, file_sha256

logger = logging.getLogger(__name__)

BATCH = 8
CLASSES = {"entropy": "IInt8EntropyCalibrator2", "minmax": "IInt8MinMaxCalibrator"}


def available(trt: Any, method: str) -> bool:
    """Whether this TensorRT has the calibrator ``method`` and the INT8 builder flag."""
    return hasattr(trt, CLASSES[method]) and hasattr(trt.BuilderFlag, "INT8")


def cache_path(
    trt: Any,
    model_path: Path,
    method: str,
    calibration: CalibrationSet,
    cache_dir: Path,
    device: cuda.DeviceInfo,
) -> Path:
    """The calibration table file for this model, calibrator, calibration set and GPU."""
    key = {
        "onnx_sha256": file_sha256(model_path),
        "tensorrt": trt.__version__,
        "gpu": device.name,
        "compute_capability": list(device.compute_capability),
        "method": method,
        "calibration": calibration.identity,
        "batch": BATCH,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / f"{Path(model_path).stem}-{digest}-{method}.calib"


def make_calibrator(
    trt: Any,
    method: str,
    calibration: CalibrationSet,
    input_shape: tuple[int, ...],
    table: Path,
    progress: Progress | None,
) -> Any:
    """A TensorRT calibrator of kind ``method`` over ``calibration``; table cached at ``table``."""
    if not available(trt, method):
        raise EngineError(
            f"engine.int8_method: {method} needs TensorRT's implicit calibrators, which "
            f"TensorRT {trt.__version__} does not have (11 removed them); use "
            "engine.int8_method: qdq"
        )
    base = getattr(trt, CLASSES[method])
    batch_size = int(input_shape[0])
    chw = tuple(int(d) for d in input_shape[1:])

    class _Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self._host = np.zeros((batch_size, *chw), np.float32)
            self._device = cuda.DeviceBuffer(self._host.nbytes)
            self._batches: Any = None
            self.batches_given = 0

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str], *args: Any) -> list[int] | None:
            if self._batches is None:
                self._batches = calibration.batches(batch_size, progress)
            batch = next(self._batches, None)
            if batch is None:
                return None
            self._host[: len(batch)] = batch
            self._host[len(batch) :] = batch[-1]  # TensorRT wants full batches: repeat the last
            _copy_to_device(self._device, self._host)
            self.batches_given += 1
            return [self._device.ptr]

        def read_calibration_cache(self, *args: Any) -> bytes | None:
            if table.is_file():
                logger.info("using cached INT8 calibration table %s", table)
                return table.read_bytes()
            return None

        def write_calibration_cache(self, cache: Any, *args: Any) -> None:
            try:
                atomic_write(table, bytes(cache), durable=True)
            except OSError as err:
                logger.warning("could not save the INT8 calibration table %s: %s", table, err)

        def free(self) -> None:
            self._device.free()

    return _Calibrator()


def _copy_to_device(device: cuda.DeviceBuffer, host: np.ndarray) -> None:
    """A synchronous host-to-device copy (calibration runs once, speed does not matter)."""
    rt = cuda.cudart()
    cuda.check(
        rt.cudaMemcpy(
            device.ptr, host.ctypes.data, host.nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        ),
        "cudaMemcpy (calibration batch)",
    )
