"""ONNX Runtime engine: the CPU backend, and the reference the GPU backends are checked against."""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from engines.base import TensorSpec
from engines.dynamic_batch import make_dynamic
from engines.errors import EngineError
from engines.options import EngineOptions

logger = logging.getLogger(__name__)

_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OnnxRuntimeSlot:
    """A host input buffer and the future of the run that reads it."""

    def __init__(self, engine: OnnxRuntimeEngine, input_buffer: np.ndarray) -> None:
        self.input = input_buffer
        self.device_input = None  # CPU only: preprocessing writes ``input``
        self._engine = engine
        self._future: Future[list[np.ndarray]] | None = None

    def submit(self, batch_size: int, *, input_on_device: bool = False) -> None:
        if input_on_device:
            raise EngineError("ONNX Runtime takes its input from host memory only")
        if not 1 <= batch_size <= self._engine.max_batch:
            raise EngineError(f"batch size {batch_size} outside 1..{self._engine.max_batch}")
        self._future = self._engine._executor.submit(self._engine._run, self.input[:batch_size])

    def wait(self) -> list[np.ndarray]:
        if self._future is None:
            raise EngineError("wait() called before submit()")
        future, self._future = self._future, None
        return future.result()


class OnnxRuntimeEngine:
    """Runs an ONNX model with ONNX Runtime on the CPU.

    Inference runs on a worker thread (ONNX Runtime releases the GIL) behind the same slot API
    as the GPU engines; there is one slot, because the CPU runs one batch at a time anyway.
    """

    backend = "onnxruntime"

    def __init__(self, model_path: Path, options: EngineOptions) -> None:
        import onnxruntime as ort

        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if options.threads:
            session_options.intra_op_num_threads = options.threads
        self._session = _load(ort, model_path, session_options)
        self._check_input(model_path)
        static_batch = self.input_spec.shape[0]
        if static_batch == 1 and options.max_batch > 1 and options.rewrite_fixed_batch:
            rewrite = make_dynamic(model_path, options.cache_dir)
            if rewrite.dynamic:
                self._session = _load(ort, rewrite.path, session_options)
                self._check_input(rewrite.path)
                static_batch = self.input_spec.shape[0]
            else:
                logger.warning(
                    "%s has a fixed batch of 1 and cannot be given a dynamic one: %s",
                    model_path.name,
                    rewrite.reason,
                )
        self.output_specs = tuple(_spec(o, model_path) for o in self._session.get_outputs())
        self.max_batch = options.max_batch if static_batch <= 0 else static_batch
        if static_batch > 0 and static_batch != options.max_batch:
            logger.warning(
                "%s has a fixed batch of %d; using it instead of max_batch=%d",
                model_path.name,
                static_batch,
                options.max_batch,
            )
        self._output_names = [o.name for o in self.output_specs]
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnxruntime")
        # One slot: ONNX Runtime runs batches one after another on the CPU, so a second slot
        # would only queue a whole batch ahead of each new frame (measured: p99 latency under
        # overload 510 -> 209 ms, throughput unchanged; docs/benchmarks.md).
        self.num_slots = 1
        shape = (self.max_batch, *self.input_spec.shape[1:])
        self._free: queue.Queue[OnnxRuntimeSlot] = queue.Queue()
        for _ in range(self.num_slots):
            self._free.put(OnnxRuntimeSlot(self, np.zeros(shape, self.input_spec.dtype)))
        self._closed = threading.Event()
        logger.info(
            "ONNX Runtime %s on CPU: %s input %s, max batch %d",
            ort.__version__,
            model_path.name,
            self.input_spec.shape[1:],
            self.max_batch,
        )

    def _check_input(self, model_path: Path) -> None:
        """Read the one (N, 3, H, W) input of the loaded session into ``input_spec``."""
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise EngineError(f"{model_path}: expected one input tensor, found {len(inputs)}")
        self.input_spec = _spec(inputs[0], model_path)
        if len(self.input_spec.shape) != 4 or self.input_spec.shape[1] != 3:
            raise EngineError(
                f"{model_path}: input {self.input_spec.name!r} has shape "
                f"{self.input_spec.shape}; expected (N, 3, H, W)"
            )
        if min(self.input_spec.shape[2:]) <= 0:
            raise EngineError(
                f"{model_path}: input height and width must be fixed, got {self.input_spec.shape}"
            )

    @property
    def input_hw(self) -> tuple[int, int]:
        return int(self.input_spec.shape[2]), int(self.input_spec.shape[3])

    def acquire(self) -> OnnxRuntimeSlot:
        return self._free.get()

    def release(self, slot: OnnxRuntimeSlot) -> None:
        self._free.put(slot)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._run(np.ascontiguousarray(batch, dtype=self.input_spec.dtype))

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(self._output_names, {self.input_spec.name: batch})

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._executor.shutdown(wait=True)


def _load(ort, model_path: Path, session_options):
    try:
        return ort.InferenceSession(
            str(model_path), session_options, providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # onnxruntime raises its own exception types per failure
        raise EngineError(
            f"{model_path}: ONNX Runtime cannot load this model ({err}); "
            "expected an ONNX file with one image input shaped (N, 3, H, W)"
        ) from err


def _spec(node, model_path: Path) -> TensorSpec:
    dtype = _ORT_DTYPES.get(node.type)
    if dtype is None:
        raise EngineError(f"{model_path}: tensor {node.name!r} has unsupported type {node.type}")
    shape = tuple(d if isinstance(d, int) else -1 for d in node.shape)
    return TensorSpec(node.name, shape, np.dtype(dtype))
