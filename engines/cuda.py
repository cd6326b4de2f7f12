"""Thin cuda-python helpers: one error check, buffers allocated once, streams, events, graphs.

Everything goes through the CUDA runtime API of cuda-python (``cuda.bindings.runtime``), whose
calls return ``(error, *values)`` tuples; :func:`check` turns a failed call into an
:class:`~streams.errors.EngineError` that names the CUDA error and says what to do. Buffers are
allocated once (device buffers with ``cudaMalloc``, page-locked host buffers with
``cudaHostAlloc`` exposed as numpy arrays without a copy) so that the hot path only enqueues
copies and kernels. cuda-python is imported on first use, so importing this module stays light.

Example:
    stream = Stream()
    host = PinnedBuffer((8, 3, 416, 416), np.float32)
    dev = DeviceBuffer(host.nbytes)
    memcpy_htod_async(dev.ptr, host.ptr, host.nbytes, stream)
    done = Event()
    done.record(stream)
    done.synchronize()
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from engines.errors import EngineError

logger = logging.getLogger(__name__)

_cudart: Any = None

# What to do about the errors a user can fix; the CUDA error name is always in the message.
_HINTS = {
    "cudaErrorMemoryAllocation": "out of GPU memory: lower max_batch, contexts or workspace_mb, "
    "or free the GPU (nvidia-smi lists the processes holding it)",
    "cudaErrorNoDevice": "no CUDA GPU is visible: check nvidia-smi and CUDA_VISIBLE_DEVICES, "
    "or use engine.backend: onnxruntime",
    "cudaErrorInsufficientDriver": "the NVIDIA driver is missing or older than this cuda-python "
    "needs: install a newer driver or a cuda-python matching the driver's CUDA version",
    "cudaErrorInvalidDevice": "no GPU with that index: check engine.device (cuda:N) against "
    "nvidia-smi",
    "cudaErrorStreamCaptureUnsupported": "this operation cannot be captured in a CUDA graph: "
    "set engine.cuda_graphs: false",
}


def cudart() -> Any:
    """The CUDA runtime module of cuda-python, imported once (``cuda.bindings.runtime`` or,
    before cuda-python 12.6, ``cuda.cudart``)."""
    global _cudart
    if _cudart is None:
        _cudart = _import_binding("runtime", "cudart")
    return _cudart


def _import_binding(name: str, legacy: str) -> Any:
    """``cuda.bindings.<name>`` (cuda-python >= 12.6) or the older ``cuda.<legacy>``."""
    import importlib

    try:
        return importlib.import_module(f"cuda.bindings.{name}")
    except ImportError:
        try:
            return importlib.import_module(f"cuda.{legacy}")
        except ImportError as err:
            raise EngineError(
                "cuda-python is not installed; the TensorRT backend needs it: "
                "pip install 'cuda-python>=12' (or use engine.backend: onnxruntime)"
            ) from err


def driver() -> Any:
    """The CUDA driver API module of cuda-python (for kernels, contexts, modules)."""
    return _import_binding("driver", "cuda")


def nvrtc() -> Any:
    """The NVRTC module of cuda-python (run-time kernel compilation)."""
    return _import_binding("nvrtc", "nvrtc")


_thread_device = threading.local()


def use_device(index: int) -> None:
    """Make GPU ``index`` current on the calling thread, doing the work only the first time a
    thread asks (cheap enough to call per batch from any thread: capture, batcher, completer)."""
    if getattr(_thread_device, "index", None) != index:
        set_device(index)


def error_name(err: Any) -> str:
    """``cudaErrorMemoryAllocation`` for a runtime error, ``CUDA_ERROR_...`` for a driver one."""
    rt = cudart()
    if isinstance(err, rt.cudaError_t):
        status, name = rt.cudaGetErrorName(err)
        if status == rt.cudaError_t.cudaSuccess:
            return name.decode() if isinstance(name, bytes) else str(name)
    try:  # driver API results (CUresult)
        drv = driver()
        if isinstance(err, drv.CUresult):
            status, name = drv.cuGetErrorName(err)
            if status == drv.CUresult.CUDA_SUCCESS:
                return name.decode() if isinstance(name, bytes) else str(name)
    except EngineError:
        pass
    return getattr(err, "name", str(err))


def check(result: Any, what: str = "CUDA call") -> Any:
    """Raise EngineError unless a cuda-python result tuple reports success.

    Args:
        result: the ``(error, *values)`` tuple a cuda-python call returns (or a bare error).
        what: what was being done, for the message (``"cudaMalloc(64 MiB)"``).

    Returns:
        None, the single value, or a tuple of the values after the error code.
    """
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if int(err) != 0:
        name = error_name(err)
        hint = _HINTS.get(name, "")
        raise EngineError(f"{what} failed: {name}" + (f"; {hint}" if hint else ""))
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@dataclass(frozen=True)
class DeviceInfo:
    """What the engine cache and the doctor need to know about one GPU."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory_bytes: int
    pci: str = ""  # "0000:3b:00" (domain:bus:device), as the driver's Xid lines name it

    @property
    def sm(self) -> str:
        """``sm_90`` style architecture name."""
        return f"sm_{self.compute_capability[0]}{self.compute_capability[1]}"


def device_count() -> int:
    """Number of CUDA GPUs visible; 0 when there is no driver or no GPU (never raises for that)."""
    rt = cudart()
    err, count = rt.cudaGetDeviceCount()
    if int(err) != 0:
        logger.debug("cudaGetDeviceCount: %s", error_name(err))
        return 0
    return int(count)


def device_info(index: int = 0) -> DeviceInfo:
    """Name, compute capability and memory of GPU ``index``."""
    rt = cudart()
    prop = check(rt.cudaGetDeviceProperties(index), f"cudaGetDeviceProperties({index})")
    name = prop.name
    if isinstance(name, (bytes, bytearray)):
        name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
    pci = f"{int(prop.pciDomainID):04x}:{int(prop.pciBusID):02x}:{int(prop.pciDeviceID):02x}"
    return DeviceInfo(
        index,
        str(name).strip(),
        (int(prop.major), int(prop.minor)),
        int(prop.totalGlobalMem),
        pci,
    )


SYNC_MODES = {"spin": 1, "yield": 2, "blocking": 4}  # CU_CTX_SCHED_*
_sync_applied: set[int] = set()


def set_device(index: int) -> None:
    """Make GPU ``index`` current for the calling thread (TensorRT uses the current device)."""
    rt = cudart()
    count = device_count()
    if index >= count:
        raise EngineError(
            f"cuda:{index} requested but {count} CUDA GPU(s) are visible; "
            "check engine.device against nvidia-smi and CUDA_VISIBLE_DEVICES"
        )
    if index not in _sync_applied:
        _sync_applied.add(index)
        _apply_sync_mode(index)
    check(rt.cudaSetDevice(index), f"cudaSetDevice({index})")
    _thread_device.index = index


def _apply_sync_mode(index: int) -> None:
    """``STREAMS_CUDA_SYNC=blocking|yield|spin``: how a thread waiting for the GPU waits.

    CUDA's default spins while there are fewer contexts than cores. Set before the primary
    context starts, so that it covers every wait in the process, PyNvVideoCodec's included.
    """
    mode = os.environ.get("STREAMS_CUDA_SYNC", "").strip().lower()
    if not mode:
        return
    if mode not in SYNC_MODES:
        logger.warning(
            "STREAMS_CUDA_SYNC=%s ignored; expected one of %s", mode, ", ".join(SYNC_MODES)
        )
        return
    try:
        drv = driver()
        check(drv.cuInit(0), "cuInit")
        device = check(drv.cuDeviceGet(index), "cuDeviceGet")
        check(
            drv.cuDevicePrimaryCtxSetFlags(device, SYNC_MODES[mode]), "cuDevicePrimaryCtxSetFlags"
        )
        logger.info(
            "cuda:%d: threads waiting for the GPU %s (STREAMS_CUDA_SYNC)",
            index,
            {"spin": "spin", "yield": "yield", "blocking": "block"}[mode],
        )
    except EngineError as err:
        logger.warning("STREAMS_CUDA_SYNC=%s not applied: %s", mode, err)


def mem_get_info() -> tuple[int, int]:
    """(free, total) bytes of the current GPU."""
    return check(cudart().cudaMemGetInfo(), "cudaMemGetInfo")


class DeviceBuffer:
    """``nbytes`` of GPU memory from cudaMalloc, freed by :meth:`free` (or when collected)."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = int(nbytes)
        self.ptr = int(
            check(
                cudart().cudaMalloc(max(self.nbytes, 1)),
                f"cudaMalloc({self.nbytes / 2**20:.1f} MiB)",
            )
        )

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            check(cudart().cudaFree(ptr), "cudaFree")

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: the driver may be gone
            self.free()


class PinnedBuffer:
    """Page-locked host memory (cudaHostAlloc) seen as a numpy array without a copy.

    Async copies need page-locked memory to be truly asynchronous; exposing it as
    ``array`` lets preprocessing write straight into the buffer the GPU copies from. The
    array must not be used after :meth:`free`.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | type) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(d) for d in shape)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        rt = cudart()
        self.ptr = int(
            check(
                rt.cudaHostAlloc(max(self.nbytes, 1), rt.cudaHostAllocDefault),
                f"cudaHostAlloc({self.nbytes / 2**20:.1f} MiB)",
            )
        )
        raw = (ctypes.c_byte * max(self.nbytes, 1)).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=self.dtype, count=int(np.prod(self.shape)))
        self.array = self.array.reshape(self.shape)

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            self.array = np.empty((0,), self.dtype)
            check(cudart().cudaFreeHost(ptr), "cudaFreeHost")

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.free()


class Stream:
    """A CUDA stream that does not synchronise with the legacy default stream."""

    def __init__(self, non_blocking: bool = True) -> None:
        rt = cudart()
        flags = rt.cudaStreamNonBlocking if non_blocking else rt.cudaStreamDefault
        self.raw = check(rt.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags")
        self.handle = int(self.raw)  # what TensorRT's execute_async_v3 takes

    def synchronize(self) -> None:
        check(cudart().cudaStreamSynchronize(self.raw), "cudaStreamSynchronize")

    def destroy(self) -> None:
        if self.handle:
            self.handle = 0
            check(cudart().cudaStreamDestroy(self.raw), "cudaStreamDestroy")


class Event:
    """A CUDA event without timing: the cheapest way to signal 'this batch is done'.

    ``blocking``: :meth:`synchronize` sleeps until the GPU signals, instead of spinning a
    core for the whole wait (CUDA's default while there are fewer contexts than cores). For
    a thread that waits milliseconds on every batch (the completer), spinning costs a core's
    fraction for nothing; the sleep costs tens of microseconds of wake-up. Only this event's
    waits change, not PyNvVideoCodec's or the rest of the process's (``STREAMS_CUDA_SYNC``).
    """

    def __init__(self, timing: bool = False, blocking: bool = False) -> None:
        rt = cudart()
        flags = rt.cudaEventDefault if timing else rt.cudaEventDisableTiming
        if blocking:
            flags |= rt.cudaEventBlockingSync
        self.raw = check(rt.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags")

    def record(self, stream: Stream) -> None:
        check(cudart().cudaEventRecord(self.raw, stream.raw), "cudaEventRecord")

    def synchronize(self) -> None:
        check(cudart().cudaEventSynchronize(self.raw), "cudaEventSynchronize")

    def query(self) -> bool:
        """True when the work before the last record has finished."""
        rt = cudart()
        (err,) = rt.cudaEventQuery(self.raw)
        if err == rt.cudaError_t.cudaErrorNotReady:
            return False
        check((err,), "cudaEventQuery")
        return True

    def elapsed_ms(self, start: Event) -> float:
        """Milliseconds between ``start`` and this event (both created with ``timing=True``)."""
        return float(
            check(cudart().cudaEventElapsedTime(start.raw, self.raw), "cudaEventElapsedTime")
        )

    def destroy(self) -> None:
        if self.raw is not None:
            raw, self.raw = self.raw, None
            check(cudart().cudaEventDestroy(raw), "cudaEventDestroy")


def memcpy_htod_async(dst_ptr: int, src_ptr: int, nbytes: int, stream: Stream) -> None:
    """Enqueue a host-to-device copy (``src`` should be pinned for it to be asynchronous)."""
    rt = cudart()
    check(
        rt.cudaMemcpyAsync(
            dst_ptr, src_ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream.raw
        ),
        "cudaMemcpyAsync(host to device)",
    )


def memcpy_dtoh_async(dst_ptr: int, src_ptr: int, nbytes: int, stream: Stream) -> None:
    """Enqueue a device-to-host copy (``dst`` should be pinned for it to be asynchronous)."""
    rt = cudart()
    check(
        rt.cudaMemcpyAsync(
            dst_ptr, src_ptr, nbytes, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.raw
        ),
        "cudaMemcpyAsync(device to host)",
    )


class GraphCapture:
    """Capture the work enqueued on ``stream`` into an instantiated CUDA graph.

    Thread-local capture mode: other threads may keep using CUDA while this one captures.

    Example:
        with GraphCapture(stream) as capture:
            enqueue_work(stream)
        capture.graph.launch(stream)
    """

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.graph: GraphExec | None = None

    def __enter__(self) -> GraphCapture:  # noqa: PYI034
        rt = cudart()
        check(
            rt.cudaStreamBeginCapture(
                self.stream.raw, rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
            ),
            "cudaStreamBeginCapture",
        )
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        rt = cudart()
        err, graph = rt.cudaStreamEndCapture(self.stream.raw)
        if exc_type is not None:  # the capture is void; still end it so the stream is usable
            if int(err) == 0 and graph is not None:
                rt.cudaGraphDestroy(graph)
            return
        check((err,), "cudaStreamEndCapture")
        try:
            exec_ = check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        finally:
            rt.cudaGraphDestroy(graph)
        self.graph = GraphExec(exec_)


class GraphExec:
    """An instantiated CUDA graph: one launch replays every captured copy and kernel."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def launch(self, stream: Stream) -> None:
        check(cudart().cudaGraphLaunch(self.raw, stream.raw), "cudaGraphLaunch")

    def destroy(self) -> None:
        if self.raw is not None:
            raw, self.raw = self.raw, None
            check(cudart().cudaGraphExecDestroy(raw), "cudaGraphExecDestroy")


def driver_version() -> str:
    """The CUDA version the installed driver supports (``13.0``), or ``""`` without a driver."""
    err, version = cudart().cudaDriverGetVersion()
    if int(err) != 0 or not version:
        return ""
    return f"{version // 1000}.{version % 1000 // 10}"


def runtime_version() -> str:
    """The CUDA runtime version cuda-python was built against (``13.0``)."""
    err, version = cudart().cudaRuntimeGetVersion()
    return f"{version // 1000}.{version % 1000 // 10}" if int(err) == 0 else ""
