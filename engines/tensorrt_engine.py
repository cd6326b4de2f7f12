"""TensorRT engine: the GPU backend, one execution context and one CUDA stream per slot.

Each slot owns everything one batch in flight needs, allocated once at start: an execution
context (on its own deserialized copy of the one plan, so every slot runs the same tactics and
gives the same bits for the same input), a non-blocking CUDA stream, a pinned host input
(``slot.input``, what preprocessing writes), a device buffer per input and output sized for
``max_batch``, pinned host outputs and a completion event. ``submit(n)`` only enqueues work
(set the input shape, copy n images in, ``execute_async_v3``, copy n rows of each output out,
record the event) and returns; ``wait()`` is the one synchronisation per batch. With
``options.cuda_graphs`` the copy-execute-copy sequence of each batch size is captured once into
a CUDA graph and replayed with one launch.

Example:
    engine = TensorRTEngine(Path("yolov3-tiny.onnx"), EngineOptions(max_batch=32))
    slot = engine.acquire()
    slot.input[:n] = batch            # (n, 3, 416, 416) float32
    slot.submit(n)
    (detections,) = slot.wait()       # (n, 2535, 85): a view, valid until the slot's next submit
    engine.release(slot)
"""

from __future__ import annotations

import logging
import queue
import time
from pathlib import Path
from typing import Any

import numpy as np

from engines import cuda, engine_layers
from engines.base import DeviceInput, TensorSpec
from engines.errors import EngineError
from engines.options import EngineOptions
from engines.tensorrt_build import (
    batch_model,
    deserialize_copy,
    engine_path,
    import_tensorrt,
    load_cuda_engine,
    trt_logger,
)

logger = logging.getLogger(__name__)


def _numpy_dtypes(trt: Any) -> dict[Any, np.dtype]:
    names = {
        "FLOAT": np.float32,
        "HALF": np.float16,
        "INT32": np.int32,
        "INT8": np.int8,
        "UINT8": np.uint8,
        "BOOL": np.bool_,
        "INT64": np.int64,
    }
    return {
        getattr(trt.DataType, k): np.dtype(v) for k, v in names.items() if hasattr(trt.DataType, k)
    }


class TensorRTSlot:
    """One batch in flight: an execution context on its own stream, with its own buffers.

    Attributes:
        input: pinned host array ``(max_batch, 3, H, W)`` preprocessing writes into.
        device_input: the device input buffer and the slot's stream, for a GPU preprocessing
            kernel that writes there on that stream and then calls
            ``submit(n, input_on_device=True)`` (see ``engines.base.DeviceInput``).
        stream: the slot's CUDA stream.
    """

    def __init__(self, engine: TensorRTEngine, index: int, context: Any) -> None:
        self._engine = engine
        self.index = index
        self._context = context
        self.stream = cuda.Stream(non_blocking=True)
        self._done = cuda.Event(blocking=True)  # wait() sleeps, not spins, while a batch runs
        spec = engine.input_spec
        self._input_host = cuda.PinnedBuffer((engine.max_batch, *spec.shape[1:]), spec.dtype)
        self.input = self._input_host.array
        self._input_row_bytes = self._input_host.nbytes // engine.max_batch
        self._input_device = cuda.DeviceBuffer(self._input_host.nbytes)
        self.device_input = DeviceInput(engine.device.index, self._input_device.ptr, self.stream)
        self._outputs: list[tuple[cuda.DeviceBuffer, cuda.PinnedBuffer, int]] = []
        for out in engine.output_specs:
            host = cuda.PinnedBuffer((engine.max_batch, *out.shape[1:]), out.dtype)
            device = cuda.DeviceBuffer(host.nbytes)
            self._outputs.append((device, host, host.nbytes // engine.max_batch))
        self._shape_batch = 0  # the input batch currently set on the context
        self._pending: int | None = None
        self._graphs: dict[tuple[int, bool], cuda.GraphExec] = {}

    def _bind(self, profile: int) -> None:
        """Select this context's profile and point its tensors at the slot's buffers (once)."""
        ctx = self._context
        if self._engine.dynamic_batch and not ctx.set_optimization_profile_async(
            profile, self.stream.handle
        ):
            raise EngineError(
                f"TensorRT refused optimization profile {profile} for context "
                f"{self.index}: {_last_errors()}"
            )
        ctx.set_tensor_address(self._engine.input_spec.name, self._input_device.ptr)
        for spec, (device, _, _) in zip(self._engine.output_specs, self._outputs):
            ctx.set_tensor_address(spec.name, device.ptr)
        self._set_batch(self._engine.max_batch)

    def _set_batch(self, batch_size: int) -> None:
        """Set the context's input shape; a fixed-batch engine always runs its full batch."""
        if self._engine.dynamic_batch and batch_size != self._shape_batch:
            shape = (batch_size, *self._engine.input_spec.shape[1:])
            if not self._context.set_input_shape(self._engine.input_spec.name, shape):
                raise EngineError(f"TensorRT refused input shape {shape}: {_last_errors()}")
            self._shape_batch = batch_size

    def submit(self, batch_size: int, *, input_on_device: bool = False) -> None:
        """Enqueue inference on ``input[:batch_size]`` and return at once.

        Args:
            batch_size: 1..max_batch images.
            input_on_device: the images are already in ``device_input.ptr`` (written on
                ``stream``); skip the host-to-device copy.
        """
        engine = self._engine
        if not 1 <= batch_size <= engine.max_batch:
            raise EngineError(f"batch size {batch_size} outside 1..{engine.max_batch}")
        if self._pending is not None:
            raise EngineError("submit() called twice without wait() on the same slot")
        engine._ensure_device()
        copy_input = not input_on_device
        graph = self._graphs.get((batch_size, copy_input)) if engine.cuda_graphs else None
        if graph is not None:
            # A graph holds the context state it was captured with: set the context back to
            # this graph's shape first (an eager batch of another size may have changed it),
            # so that what TensorRT reads at replay matches what it captured.
            self._set_batch(batch_size)
            graph.launch(self.stream)
        else:
            self._enqueue(batch_size, copy_input)
            if engine.cuda_graphs:
                self._capture(batch_size, copy_input)
        self._done.record(self.stream)
        self._pending = batch_size

    def _enqueue(self, batch_size: int, copy_input: bool) -> None:
        self._set_batch(batch_size)
        if copy_input:
            cuda.memcpy_htod_async(
                self._input_device.ptr,
                self._input_host.ptr,
                batch_size * self._input_row_bytes,
                self.stream,
            )
        if not self._context.execute_async_v3(self.stream.handle):
            raise EngineError(
                f"TensorRT execute_async_v3 failed for batch {batch_size}: {_last_errors()}"
            )
        for device, host, row_bytes in self._outputs:
            cuda.memcpy_dtoh_async(host.ptr, device.ptr, batch_size * row_bytes, self.stream)

    def _capture(self, batch_size: int, copy_input: bool) -> None:
        """Capture the sequence just enqueued (TensorRT's required warm-up run) into a graph."""
        try:
            with cuda.GraphCapture(self.stream) as capture:
                self._enqueue(batch_size, copy_input)
        except EngineError as err:
            self._engine._disable_graphs(f"capturing batch {batch_size} failed: {err}")
            return
        self._graphs[(batch_size, copy_input)] = capture.graph

    def wait(self) -> list[np.ndarray]:
        """Block until this slot's batch is done; return views of the n rows of each output.

        The arrays are views into the slot's pinned output buffers: read (or copy) them
        before the slot is submitted again.
        """
        if self._pending is None:
            raise EngineError("wait() called before submit()")
        self._done.synchronize()
        batch_size, self._pending = self._pending, None
        return [host.array[:batch_size] for _, host, _ in self._outputs]

    def _close(self) -> None:
        if self._pending is not None:
            self._done.synchronize()
            self._pending = None
        for graph in self._graphs.values():
            graph.destroy()
        self._graphs.clear()
        for device, host, _ in self._outputs:
            device.free()
            host.free()
        self._input_device.free()
        self._input_host.free()
        self._done.destroy()
        self.stream.destroy()
        self._context = None


class TensorRTEngine:
    """Runs an ONNX model with TensorRT on one GPU; the engine is built once and cached.

    Attributes mirror :class:`~engines.onnxruntime_engine.OnnxRuntimeEngine`, plus
    ``engine_path`` (the cached engine), ``built`` (whether this start built it) and
    ``setup_s`` (seconds to build or load, deserialize and allocate).
    """

    backend = "tensorrt"

    def __init__(self, model_path: Path, options: EngineOptions) -> None:
        started = time.perf_counter()
        trt = import_tensorrt()
        self._trt = trt
        model_path = batch_model(Path(model_path), options)  # a fixed batch of 1 made dynamic
        self._device_index = options.device_index
        cuda.set_device(self._device_index)
        self.device = cuda.device_info(self._device_index)
        self.engine_path = engine_path(model_path, options)
        self._runtime = trt.Runtime(trt_logger())
        self._engine, self.built = load_cuda_engine(model_path, options, self._runtime)
        self.cuda_graphs = bool(options.cuda_graphs)
        self.precision = options.precision
        self._inspect(model_path, options)
        self.num_slots = max(1, options.contexts)
        self._slots: list[TensorRTSlot] = []
        self._plans: list[Any] = []  # one ICudaEngine per slot, all from the same plan
        self._free: queue.Queue[TensorRTSlot] = queue.Queue()
        self._closed = False
        try:
            for i in range(self.num_slots):
                plan = (
                    self._engine if i == 0 else deserialize_copy(model_path, options, self._runtime)
                )
                self._plans.append(plan)
                context = plan.create_execution_context()
                if context is None:
                    raise EngineError(
                        f"TensorRT could not create execution context {i + 1} of "
                        f"{self.num_slots} ({_last_errors()}); each needs "
                        f"{_activation_mib(self._engine):.0f} MiB of GPU memory: lower "
                        "engine.contexts or engine.max_batch, or free the GPU"
                    )
                slot = TensorRTSlot(self, i, context)
                slot._bind(0)
                self._slots.append(slot)
                self._free.put(slot)
            for slot in self._slots:
                slot.stream.synchronize()  # profile switches are async; settle them once here
        except EngineError as err:
            self.close()
            raise EngineError(
                f"{model_path.name}: setting up {self.num_slots} TensorRT "
                f"context(s) at max batch {self.max_batch} failed: {err}"
            ) from err
        self.setup_s = time.perf_counter() - started
        logger.info(
            "TensorRT %s on %s (%s): %s %s, input %s, max batch %d, %d context(s)%s; engine %s "
            "in %.1f s (%s)",
            trt.__version__,
            self.device.name,
            self.device.sm,
            model_path.name,
            self.precision,
            self.input_spec.shape[1:],
            self.max_batch,
            self.num_slots,
            ", CUDA graphs" if self.cuda_graphs else "",
            "built" if self.built else "loaded",
            self.setup_s,
            self.engine_path,
        )

    def layers(self) -> list[dict[str, Any]]:
        """What each layer of the engine runs in, at max batch (engines/engine_layers.py)."""
        return engine_layers.inspect(self._trt, self._engine, self.max_batch)

    def _inspect(self, model_path: Path, options: EngineOptions) -> None:
        """Read tensor names, dtypes and shapes from the engine; fix max_batch."""
        trt, engine = self._trt, self._engine
        dtypes = _numpy_dtypes(trt)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1:
            raise EngineError(f"{model_path}: expected one input tensor, found {inputs}")

        def dtype_of(name: str) -> np.dtype:
            dt = engine.get_tensor_dtype(name)
            if dt not in dtypes:
                raise EngineError(
                    f"{model_path}: tensor {name!r} has type {dt}, which has no "
                    "numpy equivalent; export it as float32 or float16"
                )
            return dtypes[dt]

        in_name = inputs[0]
        in_shape = tuple(engine.get_tensor_shape(in_name))
        self.num_profiles = int(engine.num_optimization_profiles)
        self.dynamic_batch = in_shape[0] == -1
        if self.dynamic_batch:
            self.max_batch = int(engine.get_tensor_profile_shape(in_name, 0)[2][0])
        else:
            self.max_batch = int(in_shape[0])
        self.input_spec = TensorSpec(in_name, in_shape, dtype_of(in_name))
        # Output shapes at max batch and at batch 1 from a scratch context: rows must scale.
        probe = engine.create_execution_context()
        if probe is None:
            raise EngineError(
                f"{model_path}: TensorRT could not create an execution context "
                f"({_last_errors()}); is the GPU out of memory?"
            )
        specs = []
        try:
            full = {}
            for batch in (1, self.max_batch):
                if in_shape[0] == -1 and not probe.set_input_shape(in_name, (batch, *in_shape[1:])):
                    raise EngineError(
                        f"{model_path}: TensorRT refused batch {batch}: {_last_errors()}"
                    )
                full[batch] = {n: tuple(probe.get_tensor_shape(n)) for n in outputs}
            for name in outputs:
                one, most = full[1][name], full[self.max_batch][name]
                if min(most, default=0) < 0 or (
                    in_shape[0] == -1
                    and (one[0] != 1 or most[0] != self.max_batch or one[1:] != most[1:])
                ):
                    raise EngineError(
                        f"{model_path}: output {name!r} has shape {one} at batch 1 and {most} at "
                        f"batch {self.max_batch}; expected the batch first and fixed other "
                        "dimensions (data-dependent outputs are not supported)"
                    )
                shape = (-1, *most[1:]) if in_shape[0] == -1 else most
                specs.append(TensorSpec(name, shape, dtype_of(name)))
        finally:
            del probe
        self.output_specs = tuple(specs)

    @property
    def input_hw(self) -> tuple[int, int]:
        return int(self.input_spec.shape[2]), int(self.input_spec.shape[3])

    def _ensure_device(self) -> None:
        """Make this engine's GPU current on the calling thread (once per thread)."""
        cuda.use_device(self._device_index)

    def _disable_graphs(self, reason: str) -> None:
        if self.cuda_graphs:
            self.cuda_graphs = False
            logger.warning("CUDA graphs switched off for this TensorRT engine: %s", reason)

    def prepare_graphs(self, *, input_on_device: bool) -> None:
        """With ``cuda_graphs``: capture every batch size on every slot now, in this thread.

        Why: capturing on the first batch of each size happened in the batcher thread while
        decoder threads ran, and on an H200 that capture failed ("operation failed due to a
        previous error during capture"), switching graphs off for the run. Captured here,
        before the pipeline's threads start, nothing else runs; the first batches also stop
        paying for a capture.
        """
        if not self.cuda_graphs:
            return
        for slot in self._slots:
            for batch_size in range(1, self.max_batch + 1):
                slot.submit(batch_size, input_on_device=input_on_device)
                slot.wait()
                if not self.cuda_graphs:
                    return

    def acquire(self) -> TensorRTSlot:
        return self._free.get()

    def release(self, slot: TensorRTSlot) -> None:
        self._free.put(slot)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run one ``(n, 3, H, W)`` batch synchronously and return copies of the outputs."""
        n = int(batch.shape[0])
        if not 1 <= n <= self.max_batch:
            raise EngineError(f"batch of {n} images outside 1..{self.max_batch}")
        slot = self.acquire()
        try:
            slot.input[:n] = batch
            slot.submit(n)
            return [out.copy() for out in slot.wait()]
        finally:
            self.release(slot)

    def close(self) -> None:
        """Wait for batches in flight, then free buffers, graphs, streams, contexts, engine."""
        if self._closed:
            return
        self._closed = True
        for slot in self._slots:
            try:
                slot._close()
            except EngineError as err:
                logger.warning("closing TensorRT slot %d: %s", slot.index, err)
        self._slots.clear()
        self._plans.clear()
        self._engine = None
        self._runtime = None

    def __enter__(self) -> TensorRTEngine:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _last_errors() -> str:
    errors = list(trt_logger().errors)
    return "; ".join(errors[-3:]) if errors else "no TensorRT error logged"


def _activation_mib(engine: Any) -> float:
    size = getattr(engine, "device_memory_size_v2", None) or getattr(
        engine, "device_memory_size", 0
    )
    return float(size) / 2**20
