"""GPU preprocessing: one fused CUDA kernel per batch, compiled at run time with NVRTC.

Why: on the GPU path the frames are already on the device (NVDEC NV12 surfaces) or go there
once (a host BGR frame, uploaded through pinned memory), and the engine's input buffer is on
the device too. One kernel launch per batch letterboxes every image with bilinear sampling,
converts NV12 (BT.601 limited range) or packed BGR to planar RGB, normalises to [0, 1] and
writes FP16 or FP32 straight into ``(max_batch, 3, H, W)``: no host round trip, no per-image
launch, no host synchronisation.

The geometry is exactly :meth:`processors.letterbox.Letterbox.fit` and the sampling is
OpenCV's ``INTER_LINEAR`` convention (pixel centres, ``src = (dst + 0.5) * src_w / new_w -
0.5``, clamped to the edge, per axis as ``cv2.resize`` computes it), so the CPU path
(:func:`processors.letterbox.preprocess_into`) and this one agree within a rounding step on
BGR input. For NV12 each of the four bilinear taps is converted to RGB with its own chroma
sample (nearest, as FFmpeg's swscale does when OpenCV decodes) and rounded to 8 bits before
interpolation, which is what the CPU path does in two steps.

Per batch: the per-image descriptors (source kind, plane pointers, pitch, size, geometry) are
written into a pinned host buffer allocated once, copied to the device with one async copy,
and one launch covers all images (grid z = image index). Descriptor buffers rotate through a
small ring guarded by events, so a batch on one engine stream never overwrites the
descriptors a batch on another stream is still reading.

Example:
    pre = GpuPreprocessor((416, 416), np.float16, max_batch=8)
    sources = [reader_surface.nv12(), pre.upload_bgr(slot.stream, frame.image_bgr)]
    boxes = pre.preprocess(slot.device_input.stream, slot.device_input.ptr, sources)
    slot.submit(len(sources), input_on_device=True)
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engines import cuda
from processors.errors import ProcessorError
from processors.letterbox import PAD_VALUE, Letterbox

logger = logging.getLogger(__name__)

KIND_BGR = 0
KIND_NV12 = 1

# One descriptor per image; must match ``struct Desc`` in the kernel source (64 bytes).
DESC_DTYPE = np.dtype(
    [
        ("plane0", "<u8"),  # BGR pixels, or the Y plane
        ("plane1", "<u8"),  # the interleaved UV plane (NV12), else 0
        ("kind", "<i4"),  # KIND_BGR | KIND_NV12
        ("pitch", "<i4"),  # bytes per row (both NV12 planes share it)
        ("src_w", "<i4"),
        ("src_h", "<i4"),
        ("pad_x", "<i4"),
        ("pad_y", "<i4"),
        ("new_w", "<i4"),
        ("new_h", "<i4"),
        ("ratio_x", "<f4"),
        ("ratio_y", "<f4"),  # source pixels per resized pixel (cv2.resize)
        ("reserved", "<i4", (2,)),
    ]
)

_BLOCK = (32, 8, 1)
_DESC_RING = 4  # descriptor buffers in rotation (batches in flight across engine streams)

KERNEL_SOURCE = r"""
struct Desc {
    unsigned long long plane0;
    unsigned long long plane1;
    int kind, pitch;
    int src_w, src_h;
    int pad_x, pad_y;
    int new_w, new_h;
    float ratio_x, ratio_y;
    int reserved[2];
};

#define PAD_VALUE @PAD@.0f
#define INV_255 0.003921568859368563f  /* float32(1/255), what the CPU path multiplies by */

__device__ __forceinline__ float clamp255(float v) {
    return fminf(fmaxf(v, 0.0f), 255.0f);
}

/* RGB of source pixel (x, y), each channel already rounded to 8 bits like a decoded frame. */
__device__ __forceinline__ void fetch_rgb(const Desc& d, int x, int y, float* rgb) {
    const unsigned char* p0 = (const unsigned char*)d.plane0;
    if (d.kind == 0) {  /* packed BGR */
        const unsigned char* p = p0 + (size_t)y * d.pitch + 3 * x;
        rgb[0] = p[2]; rgb[1] = p[1]; rgb[2] = p[0];
    } else {            /* NV12, BT.601 limited range, chroma sample of the 2x2 block */
        float luma = (float)p0[(size_t)y * d.pitch + x];
        const unsigned char* uv = (const unsigned char*)d.plane1
                                  + (size_t)(y >> 1) * d.pitch + (x & ~1);
        float u = (float)uv[0] - 128.0f;
        float v = (float)uv[1] - 128.0f;
        float c = (luma - 16.0f) * 1.164383562f;           /* 255 / 219 */
        rgb[0] = rintf(clamp255(c + 1.596026786f * v));     /* 1.402 * 255 / 224 */
        rgb[1] = rintf(clamp255(c - 0.391762290f * u - 0.812967647f * v));
        rgb[2] = rintf(clamp255(c + 2.017232143f * u));     /* 1.772 * 255 / 224 */
    }
}

/* OpenCV INTER_LINEAR: pixel centres, edge taps clamped. */
__device__ __forceinline__ void axis(int i, float ratio, int size, int* i0, int* i1, float* a) {
    float f = ((float)i + 0.5f) * ratio - 0.5f;
    int s = (int)floorf(f);
    float w = f - (float)s;
    if (s < 0) { s = 0; w = 0.0f; }
    if (s >= size - 1) { s = size - 1; w = 0.0f; }
    *i0 = s;
    *i1 = min(s + 1, size - 1);
    *a = w;
}

__device__ __forceinline__ unsigned short to_half(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

template <bool HALF>
__device__ __forceinline__ void letterbox(const Desc* __restrict__ descs, void* dst,
                                          int out_h, int out_w) {
    __shared__ Desc d;
    if (threadIdx.x == 0 && threadIdx.y == 0) d = descs[blockIdx.z];
    __syncthreads();
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) return;

    float rgb[3] = {PAD_VALUE, PAD_VALUE, PAD_VALUE};
    int ix = x - d.pad_x, iy = y - d.pad_y;
    if (ix >= 0 && iy >= 0 && ix < d.new_w && iy < d.new_h) {
        int x0, x1, y0, y1;
        float ax, ay;
        axis(ix, d.ratio_x, d.src_w, &x0, &x1, &ax);
        axis(iy, d.ratio_y, d.src_h, &y0, &y1, &ay);
        float p00[3], p01[3], p10[3], p11[3];
        fetch_rgb(d, x0, y0, p00);
        fetch_rgb(d, x1, y0, p01);
        fetch_rgb(d, x0, y1, p10);
        fetch_rgb(d, x1, y1, p11);
        #pragma unroll
        for (int c = 0; c < 3; ++c) {
            float top = p00[c] + ax * (p01[c] - p00[c]);
            float bottom = p10[c] + ax * (p11[c] - p10[c]);
            rgb[c] = rintf(top + ay * (bottom - top));   /* cv2.resize writes uint8 */
        }
    }
    size_t plane = (size_t)out_h * out_w;
    size_t at = (size_t)blockIdx.z * 3 * plane + (size_t)y * out_w + x;
    #pragma unroll
    for (int c = 0; c < 3; ++c) {
        float value = rgb[c] * INV_255;
        if (HALF) ((unsigned short*)dst)[at + c * plane] = to_half(value);
        else ((float*)dst)[at + c * plane] = value;
    }
}

extern "C" __global__ void letterbox_f16(const Desc* descs, void* dst, int out_h, int out_w) {
    letterbox<true>(descs, dst, out_h, out_w);
}

extern "C" __global__ void letterbox_f32(const Desc* descs, void* dst, int out_h, int out_w) {
    letterbox<false>(descs, dst, out_h, out_w);
}
""".replace("@PAD@", str(PAD_VALUE))


@dataclass(frozen=True)
class DeviceNV12:
    """An NV12 picture in device memory (an NVDEC surface).

    Attributes:
        y_ptr: device address of the Y plane (``height`` rows of ``pitch`` bytes).
        uv_ptr: device address of the interleaved UV plane (``height / 2`` rows, same pitch).
        pitch: bytes per row. width, height: picture size in pixels.
        ready_event: optional CUDA event (``cudaEvent_t``) the kernel's stream waits on
            before reading, when the picture was produced on another stream.
    """

    y_ptr: int
    uv_ptr: int
    pitch: int
    width: int
    height: int
    ready_event: Any = None


@dataclass(frozen=True)
class DeviceBGR:
    """A packed BGR uint8 picture in device memory (``height`` rows of ``pitch`` bytes)."""

    ptr: int
    pitch: int
    width: int
    height: int
    ready_event: Any = None


DeviceSource = DeviceNV12 | DeviceBGR


def describe(source: DeviceSource, input_hw: tuple[int, int]) -> tuple[tuple, Letterbox]:
    """One ``DESC_DTYPE`` record for ``source`` and its letterbox geometry.

    Pure host code (no CUDA), so the packing and the geometry are testable anywhere.
    """
    if not isinstance(source, (DeviceNV12, DeviceBGR)):
        raise ProcessorError(
            f"GPU preprocessing: expected DeviceNV12 or DeviceBGR, got {type(source).__name__}"
        )
    width, height = int(source.width), int(source.height)
    if width <= 0 or height <= 0:
        raise ProcessorError(
            f"GPU preprocessing: source size must be positive, got {width}x{height}"
        )
    if isinstance(source, DeviceNV12):
        if source.pitch < width:
            raise ProcessorError(f"GPU preprocessing: NV12 pitch {source.pitch} < width {width}")
        planes = (int(source.y_ptr), int(source.uv_ptr), KIND_NV12)
    else:
        if source.pitch < 3 * width:
            raise ProcessorError(f"GPU preprocessing: BGR pitch {source.pitch} < 3 * width {width}")
        planes = (int(source.ptr), 0, KIND_BGR)
    box = Letterbox.fit((height, width), input_hw)
    new_w, new_h = box.resized_wh
    # cv2.resize derives its step from the integer sizes, per axis, not from box.scale.
    record = (
        *planes,
        int(source.pitch),
        width,
        height,
        box.pad_x,
        box.pad_y,
        new_w,
        new_h,
        width / new_w,
        height / new_h,
        (0, 0),
    )
    return record, box


# --- cuda-python access ------------------------------------------------------------------------


def _bindings() -> tuple[Any, Any]:
    """(driver, nvrtc) modules of cuda-python."""
    return cuda.driver(), cuda.nvrtc()


def _check_nvrtc(result: Any, what: str) -> Any:
    _, nvrtc = _bindings()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise ProcessorError(f"{what} failed: {getattr(err, 'name', err)}")
    return values[0] if len(values) == 1 else (tuple(values) or None)


_MODULES: dict[int, dict[str, Any]] = {}  # device index -> kernel functions (one compile)
_MODULES_LOCK = threading.Lock()


def _compile(device_index: int) -> dict[str, Any]:
    """Compile the kernels for ``device_index``'s architecture with NVRTC and load them.

    Prefers a CUBIN for the exact architecture (no driver JIT); falls back to PTX for a
    virtual architecture when this NVRTC does not know the GPU yet.
    """
    with _MODULES_LOCK:
        if device_index in _MODULES:
            return _MODULES[device_index]
        driver, nvrtc = _bindings()
        major, minor = cuda.device_info(device_index).compute_capability
        prog = _check_nvrtc(
            nvrtc.nvrtcCreateProgram(KERNEL_SOURCE.encode(), b"letterbox.cu", 0, [], []),
            "nvrtcCreateProgram",
        )
        image, log = None, ""
        try:
            for arch, binary in ((f"sm_{major}{minor}", True), (f"compute_{major}{minor}", False)):
                opts = [f"--gpu-architecture={arch}".encode(), b"--std=c++17"]
                (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
                size = _check_nvrtc(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
                buf = b" " * size
                _check_nvrtc(nvrtc.nvrtcGetProgramLog(prog, buf), "nvrtcGetProgramLog")
                log = buf.decode(errors="replace").strip("\x00 \n")
                if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
                    logger.debug("NVRTC %s failed: %s %s", arch, getattr(err, "name", err), log)
                    continue
                if binary:
                    size = _check_nvrtc(nvrtc.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
                    image = b" " * size
                    _check_nvrtc(nvrtc.nvrtcGetCUBIN(prog, image), "nvrtcGetCUBIN")
                else:
                    size = _check_nvrtc(nvrtc.nvrtcGetPTXSize(prog), "nvrtcGetPTXSize")
                    image = b" " * size
                    _check_nvrtc(nvrtc.nvrtcGetPTX(prog, image), "nvrtcGetPTX")
                break
        finally:
            nvrtc.nvrtcDestroyProgram(prog)
        if image is None:
            raise ProcessorError(
                f"NVRTC could not compile the preprocessing kernel for sm_{major}"
                f"{minor}: {log or 'no log'}; is this NVRTC older than the GPU?"
            )
        blob = np.frombuffer(image, np.uint8)  # kept alive across the call
        module = cuda.check(
            driver.cuModuleLoadData(blob.ctypes.data), "cuModuleLoadData(preprocess)"
        )
        funcs = {
            name: cuda.check(
                driver.cuModuleGetFunction(module, name.encode()), f"cuModuleGetFunction({name})"
            )
            for name in ("letterbox_f16", "letterbox_f32")
        }
        funcs["module"] = module
        _MODULES[device_index] = funcs
        logger.info("GPU preprocessing kernel compiled with NVRTC for sm_%d%d", major, minor)
        return funcs


def _handle(stream: Any) -> int:
    """A raw stream handle from an int, an ``engines.cuda.Stream`` or a cuda-python stream."""
    return int(getattr(stream, "handle", stream) or 0)


class _DescSlot:
    """One descriptor buffer of the ring: pinned host records, device copy, 'done' event."""

    def __init__(self, max_batch: int) -> None:
        self.host = cuda.PinnedBuffer((max_batch,), DESC_DTYPE)
        self.device = cuda.DeviceBuffer(self.host.nbytes)
        self.done = cuda.Event()

    def free(self) -> None:
        self.done.synchronize()
        self.done.destroy()
        self.device.free()
        self.host.free()


class _StagingSlot:
    """Pinned + device buffers for one host BGR frame; grows to the largest frame seen."""

    def __init__(self) -> None:
        self.capacity_bytes = 0
        self.host: Any = None
        self.device: Any = None
        self.consumed = cuda.Event()  # recorded after the kernel that read ``device``

    def ensure(self, nbytes: int) -> None:
        if nbytes <= self.capacity_bytes:
            return
        self.release_buffers()
        self.host = cuda.PinnedBuffer((nbytes,), np.uint8)
        self.device = cuda.DeviceBuffer(nbytes)
        self.capacity_bytes = nbytes

    def release_buffers(self) -> None:
        if self.host is not None:
            self.host.free()
            self.device.free()
        self.host = self.device = None
        self.capacity_bytes = 0


class GpuPreprocessor:
    """Letterbox + colour conversion + normalisation for a whole batch in one kernel launch.

    Args:
        input_hw: the model input (height, width).
        dtype: ``np.float16`` or ``np.float32``, the engine input's dtype.
        max_batch: images per launch at most (the engine's max batch).
        device_index: the GPU (``cuda:N``); the kernel is compiled for its architecture.
        staging_slots: host BGR frames that can be uploaded before their batch runs
            (default ``2 * max_batch``).

    Example:
        pre = GpuPreprocessor((416, 416), np.float32, max_batch=4)
        src = pre.upload_bgr(stream, image_bgr)            # host (H, W, 3) uint8 -> device
        boxes = pre.preprocess(stream, device_input_ptr, [src])
    """

    def __init__(
        self,
        input_hw: tuple[int, int],
        dtype: np.dtype | type,
        max_batch: int,
        device_index: int = 0,
        staging_slots: int | None = None,
    ) -> None:
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.dtype(np.float16), np.dtype(np.float32)):
            raise ProcessorError(f"GPU preprocessing writes float16 or float32, not {self.dtype}")
        if max_batch < 1 or min(self.input_hw) < 1:
            raise ProcessorError(
                f"GPU preprocessing: bad max_batch {max_batch} or input {self.input_hw}"
            )
        self.max_batch = int(max_batch)
        self.device_index = int(device_index)
        self._driver, _ = _bindings()
        self._rt = cuda.cudart()
        cuda.set_device(self.device_index)
        funcs = _compile(self.device_index)
        self._func = funcs["letterbox_f16" if self.dtype == np.float16 else "letterbox_f32"]
        self._descs = [_DescSlot(self.max_batch) for _ in range(_DESC_RING)]
        self._next_desc = 0
        self._staging = [_StagingSlot() for _ in range(staging_slots or 2 * self.max_batch)]
        self._next_staging = 0
        self._staged: list[_StagingSlot] = []  # uploaded since the last preprocess()
        self._lock = threading.Lock()
        self._launch_lock = threading.Lock()
        h, w = self.input_hw
        self._grid = ((w + _BLOCK[0] - 1) // _BLOCK[0], (h + _BLOCK[1] - 1) // _BLOCK[1])
        # Kernel arguments live in ctypes cells whose addresses never change.
        self._arg_descs = ctypes.c_uint64(0)
        self._arg_dst = ctypes.c_uint64(0)
        self._arg_h = ctypes.c_int32(h)
        self._arg_w = ctypes.c_int32(w)
        self._args = (ctypes.c_void_p * 4)(
            *(
                ctypes.addressof(a)
                for a in (self._arg_descs, self._arg_dst, self._arg_h, self._arg_w)
            )
        )
        self._closed = False

    def _ensure_thread(self) -> None:
        """The driver API needs the GPU's primary context current on the calling thread."""
        cuda.use_device(self.device_index)

    def upload_bgr(self, stream: Any, image_bgr: np.ndarray) -> DeviceBGR:
        """Copy a host BGR uint8 frame to a reusable device staging buffer, on ``stream``.

        The copy goes through a pinned buffer (truly asynchronous). The staging slot is
        reused only after the kernel of the batch that read it has run (an event, almost
        always already complete, so no real wait). Use the same stream for ``preprocess``.
        """
        if image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ProcessorError(
                f"upload_bgr expects an (H, W, 3) uint8 BGR array, got "
                f"{image_bgr.shape} {image_bgr.dtype}"
            )
        self._ensure_thread()
        height, width = int(image_bgr.shape[0]), int(image_bgr.shape[1])
        nbytes = height * width * 3
        with self._lock:
            slot = self._staging[self._next_staging]
            if slot in self._staged:
                raise ProcessorError(
                    f"upload_bgr: more than {len(self._staging)} frames uploaded "
                    "before preprocess(); raise staging_slots"
                )
            self._next_staging = (self._next_staging + 1) % len(self._staging)
            self._staged.append(slot)
        slot.consumed.synchronize()  # the batch that last read this slot has run
        slot.ensure(nbytes)
        np.copyto(slot.host.array[:nbytes].reshape(height, width, 3), image_bgr)
        cuda.check(
            self._rt.cudaMemcpyAsync(
                slot.device.ptr,
                slot.host.ptr,
                nbytes,
                self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                _handle(stream),
            ),
            "cudaMemcpyAsync(BGR frame to device)",
        )
        return DeviceBGR(slot.device.ptr, width * 3, width, height)

    def preprocess(
        self, stream: Any, dst_ptr: int, sources: Sequence[DeviceSource]
    ) -> list[Letterbox]:
        """Enqueue the letterbox kernel for ``sources`` on ``stream``; return their geometry.

        Args:
            stream: the CUDA stream handle (int) the engine will run on (or an object with
                ``.handle``).
            dst_ptr: device address of the engine input ``(max_batch, 3, H, W)``; images
                ``0..len(sources)-1`` are written.
            sources: 1..max_batch ``DeviceNV12`` / ``DeviceBGR`` pictures. Their memory must
                stay valid until the work enqueued on ``stream`` has run (record an event
                after the engine, then release the surfaces).

        Returns:
            One :class:`Letterbox` per source, to map boxes back to source pixels.
        """
        n = len(sources)
        if not 1 <= n <= self.max_batch:
            raise ProcessorError(f"GPU preprocessing: batch of {n} outside 1..{self.max_batch}")
        if self._closed:
            raise ProcessorError("GPU preprocessing: preprocess() after close()")
        self._ensure_thread()
        rt, handle = self._rt, _handle(stream)
        with self._lock:
            desc = self._descs[self._next_desc]
            self._next_desc = (self._next_desc + 1) % len(self._descs)
            staged, self._staged = self._staged, []
        desc.done.synchronize()  # the launch that last used this ring entry has run
        records = desc.host.array
        boxes = []
        for i, src in enumerate(sources):
            records[i], box = describe(src, self.input_hw)
            boxes.append(box)
        cuda.check(
            rt.cudaMemcpyAsync(
                desc.device.ptr,
                desc.host.ptr,
                n * DESC_DTYPE.itemsize,
                rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                handle,
            ),
            "cudaMemcpyAsync(preprocess descriptors)",
        )
        for src in sources:
            if src.ready_event is not None:
                cuda.check(
                    rt.cudaStreamWaitEvent(handle, src.ready_event, 0),
                    "cudaStreamWaitEvent(decoded frame ready)",
                )
        with self._launch_lock:  # the argument cells are shared; the launch copies them
            self._arg_descs.value = desc.device.ptr
            self._arg_dst.value = int(dst_ptr)
            cuda.check(
                self._driver.cuLaunchKernel(
                    self._func,
                    self._grid[0],
                    self._grid[1],
                    n,
                    *_BLOCK,
                    0,
                    handle,
                    ctypes.addressof(self._args),
                    0,
                ),
                "cuLaunchKernel(letterbox)",
            )
        cuda.check(rt.cudaEventRecord(desc.done.raw, handle), "cudaEventRecord")
        for slot in staged:
            cuda.check(rt.cudaEventRecord(slot.consumed.raw, handle), "cudaEventRecord")
        return boxes

    def close(self) -> None:
        """Wait for launches in flight, then free the descriptor and staging buffers."""
        if self._closed:
            return
        self._closed = True
        for desc in self._descs:
            desc.free()
        for slot in self._staging:
            slot.consumed.synchronize()
            slot.consumed.destroy()
            slot.release_buffers()
        self._descs, self._staging = [], []

    def __enter__(self) -> GpuPreprocessor:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
