"""The fused GPU letterbox kernel against the CPU path (``preprocess_into``) on real frames.

The first tests run anywhere: descriptor layout and geometry, and a numpy emulation of the
kernel's arithmetic checked against OpenCV (so the sampling and colour conventions are pinned
down without a GPU). The tests marked ``gpu`` run the kernel itself and skip, with the reason,
when cuda-python, a CUDA GPU or (for NVDEC input) PyNvVideoCodec is missing.

Tolerances, in units of 1/255 after normalisation (measured on an H100, PyNvVideoCodec 2.2.4,
OpenCV 5.0 of the GPU kit), plus one FP16 step near 1.0 on FP16 outputs:
- BGR input: max 2 (measured max 1.0, mean 0.03-0.10). Both paths sample the same pixels with
  the same weights; OpenCV keeps its weights in 11-bit fixed point, the kernel in float, so a
  result can round the other way.
- NV12 converted by OpenCV's ``cvtColor`` from the same planes: max 2 (measured 2.0, mean
  0.04-0.13): the conversion rounds (1) and then the resize rounds (1).
- NV12 decoded by NVDEC against the frame OpenCV decoded itself: max 5, mean 1.5 (measured max
  4.0, mean 0.53 on bikes and 1.05 on carphone). H.264 decoding is bit-exact (NVDEC's planes
  equal FFmpeg's, see tests/streams/capture/test_nvdec.py), but OpenCV's frames come out of FFmpeg's
  swscale table converter, which is on average 1.3 levels darker than exact BT.601 limited
  range (max 3 at full resolution, measured here too); the bilinear letterbox mixes such
  errors into at most 4. The kernel does the exact conversion, which ``cvtColor`` matches
  within 1 (see the CPU emulation test). The residue is colour-conversion rounding, not chroma
  subsampling: both paths replicate each chroma sample over its 2x2 block.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from processors.gpu_preprocess import (
    DESC_DTYPE,
    KIND_BGR,
    KIND_NV12,
    DeviceBGR,
    DeviceNV12,
    describe,
)
from processors.letterbox import PAD_VALUE, Letterbox, preprocess_into
from streams.errors import EngineError
from tests.support.gpu import download_nv12

INPUT_HW = (416, 416)
LSB = 1 / 255


# -- helpers ---------------------------------------------------------------------------------


def read_frames(path, indices) -> list[np.ndarray]:
    """BGR frames at ``indices`` as OpenCV decodes them."""
    wanted, out = set(indices), {}
    cap = cv2.VideoCapture(str(path))
    try:
        i = 0
        while len(out) < len(wanted):
            ok, frame = cap.read()
            if not ok:
                break
            if i in wanted:
                out[i] = frame
            i += 1
    finally:
        cap.release()
    return [out[i] for i in indices]


def bgr_to_nv12(image_bgr: np.ndarray) -> np.ndarray:
    """``(h * 3/2, w)`` NV12 bytes of a BGR image (OpenCV's BT.601 limited-range encoder)."""
    h, w = image_bgr.shape[:2]
    i420 = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2YUV_I420)
    u = i420[h : h + h // 4].reshape(h // 2, w // 2)
    v = i420[h + h // 4 :].reshape(h // 2, w // 2)
    nv12 = np.empty((h * 3 // 2, w), np.uint8)
    nv12[:h] = i420[:h]
    nv12[h:, 0::2], nv12[h:, 1::2] = u, v
    return nv12


def cpu_reference(image_bgr: np.ndarray, input_hw, dtype) -> np.ndarray:
    out = np.zeros((3, *input_hw), dtype)
    preprocess_into(out, image_bgr)
    return out


def within(levels: float, dtype) -> float:
    """``levels`` of 1/255, plus float slack: one FP16 step near 1.0 (2**-10) on FP16 outputs,
    a rounding hair on FP32 ones."""
    return levels + (2**-10 * 255 if np.dtype(dtype) == np.float16 else 1e-3)


def report(label: str, got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    diff = np.abs(got.astype(np.float32) - want.astype(np.float32)) / LSB
    print(f"{label}: max {diff.max():.3f}/255, mean {diff.mean():.4f}/255")
    return float(diff.max()), float(diff.mean())


# -- a numpy emulation of the kernel (documents its arithmetic) ----------------------------


def _axis(n_out: int, ratio: float, size: int):
    f = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * np.float32(ratio) - 0.5
    s = np.floor(f).astype(np.int64)
    w = (f - s).astype(np.float32)
    w[s < 0], s[s < 0] = 0, 0
    high = s >= size - 1
    w[high], s[high] = 0, size - 1
    return s, np.minimum(s + 1, size - 1), w


def emulate_nv12_rgb(nv12: np.ndarray) -> np.ndarray:
    """(3, h, w) RGB the kernel's ``fetch_rgb`` computes: nearest chroma, rounded."""
    h, w = nv12.shape[0] * 2 // 3, nv12.shape[1]
    y, uv = nv12[:h].astype(np.float32), nv12[h:]
    u = np.repeat(np.repeat(uv[:, 0::2].astype(np.float32) - 128, 2, 0), 2, 1)[:h, :w]
    v = np.repeat(np.repeat(uv[:, 1::2].astype(np.float32) - 128, 2, 0), 2, 1)[:h, :w]
    c = (y - 16) * np.float32(1.164383562)
    rgb = np.stack(
        [
            c + np.float32(1.596026786) * v,
            c - np.float32(0.391762290) * u - np.float32(0.812967647) * v,
            c + np.float32(2.017232143) * u,
        ]
    )
    return np.rint(np.clip(rgb, 0, 255))


def emulate_kernel(rgb: np.ndarray, input_hw) -> np.ndarray:
    """The kernel's letterbox of a (3, h, w) RGB image, in float32."""
    _, h, w = rgb.shape
    box = Letterbox.fit((h, w), input_hw)
    new_w, new_h = box.resized_wh
    x0, x1, ax = _axis(new_w, w / new_w, w)
    y0, y1, ay = _axis(new_h, h / new_h, h)
    top = rgb[:, y0][:, :, x0] + ax * (rgb[:, y0][:, :, x1] - rgb[:, y0][:, :, x0])
    bottom = rgb[:, y1][:, :, x0] + ax * (rgb[:, y1][:, :, x1] - rgb[:, y1][:, :, x0])
    out = np.full((3, *input_hw), PAD_VALUE, np.float32)
    out[:, box.pad_y : box.pad_y + new_h, box.pad_x : box.pad_x + new_w] = np.rint(
        top + ay[:, None] * (bottom - top)
    )
    return out * np.float32(LSB)


# -- CPU tests: layout, geometry, arithmetic --------------------------------------------------


def test_descriptor_layout_matches_the_kernel_struct():
    offsets = {name: DESC_DTYPE.fields[name][1] for name in DESC_DTYPE.names}
    assert DESC_DTYPE.itemsize == 64
    assert offsets == {
        "plane0": 0,
        "plane1": 8,
        "kind": 16,
        "pitch": 20,
        "src_w": 24,
        "src_h": 28,
        "pad_x": 32,
        "pad_y": 36,
        "new_w": 40,
        "new_h": 44,
        "ratio_x": 48,
        "ratio_y": 52,
        "reserved": 56,
    }


@pytest.mark.parametrize(
    "src_wh, input_hw",
    [
        ((640, 272), (416, 416)),  # bikes.mp4
        ((176, 144), (416, 416)),  # carphone: upscale
        ((1920, 1080), (640, 640)),  # 1080p camera
        ((416, 416), (416, 416)),  # no resize
        ((272, 640), (384, 640)),  # tall into wide
    ],
)
@pytest.mark.parametrize("kind", ["bgr", "nv12"])
def test_descriptor_geometry_is_letterbox_fit(src_wh, input_hw, kind):
    w, h = src_wh
    source = (
        DeviceBGR(0x1000, w * 3, w, h) if kind == "bgr" else DeviceNV12(0x1000, 0x2000, w, w, h)
    )
    records = np.zeros(1, DESC_DTYPE)
    records[0], box = describe(source, input_hw)
    row = records[0]
    assert box == Letterbox.fit((h, w), input_hw)
    assert (row["pad_x"], row["pad_y"]) == (box.pad_x, box.pad_y)
    assert (row["new_w"], row["new_h"]) == box.resized_wh
    assert (row["src_w"], row["src_h"]) == (w, h)
    assert row["ratio_x"] == pytest.approx(w / box.resized_wh[0])
    assert row["ratio_y"] == pytest.approx(h / box.resized_wh[1])
    assert row["kind"] == (KIND_BGR if kind == "bgr" else KIND_NV12)
    assert row["plane1"] == (0 if kind == "bgr" else 0x2000)


@pytest.mark.parametrize(
    "source, message",
    [
        (DeviceBGR(1, 30, 0, 10), "must be positive"),
        (DeviceBGR(1, 29, 10, 10), "pitch 29 < 3 \\* width 10"),
        (DeviceNV12(1, 2, 9, 10, 10), "pitch 9 < width 10"),
        (np.zeros((4, 4, 3), np.uint8), "expected DeviceNV12 or DeviceBGR"),
    ],
)
def test_describe_rejects_bad_sources(source, message):
    with pytest.raises(EngineError, match=message):
        describe(source, INPUT_HW)


@pytest.mark.parametrize("video", ["bikes.mp4", "carphone_pristine.mp4"])
@pytest.mark.parametrize("input_hw", [(416, 416), (384, 640)])
def test_kernel_arithmetic_matches_cpu_path(assets, video, input_hw):
    """The kernel's sampling convention reproduces cv2.resize INTER_LINEAR (numpy emulation)."""
    for image in read_frames(assets.videos[video], [0, 60, 119]):
        rgb = image[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
        got = emulate_kernel(rgb, input_hw)
        assert (
            report(f"emulated {video} {input_hw}", got, cpu_reference(image, input_hw, np.float32))[
                0
            ]
            <= 1.0 + 1e-3
        )


def test_kernel_nv12_arithmetic_matches_opencv_cvtcolor(assets):
    """BT.601 limited range with nearest chroma, as cv2.cvtColor(COLOR_YUV2BGR_NV12) does."""
    (image,) = read_frames(assets.videos["bikes.mp4"], [30])
    nv12 = bgr_to_nv12(image)
    want = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)[:, :, ::-1].transpose(2, 0, 1)
    diff = np.abs(emulate_nv12_rgb(nv12) - want)
    assert diff.max() <= 1


# -- GPU tests ---------------------------------------------------------------------------------


def _gpu_skip_reason() -> str | None:
    try:
        from engines import cuda

        count = cuda.device_count()
    except EngineError as err:
        return str(err)
    return None if count else "no CUDA GPU visible"


@pytest.fixture(scope="module")
def gpu():
    """(cuda helpers, a stream) on GPU 0; skips with the reason when there is none."""
    reason = _gpu_skip_reason()
    if reason:
        pytest.skip(reason)
    from engines import cuda

    cuda.set_device(0)
    stream = cuda.Stream()
    yield cuda, stream
    stream.destroy()


class Output:
    """The engine's input buffer stand-in: device ``(max_batch, 3, H, W)``, read back."""

    def __init__(self, cuda, max_batch: int, input_hw, dtype) -> None:
        self.cuda, self.shape, self.dtype = cuda, (max_batch, 3, *input_hw), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.device = cuda.DeviceBuffer(self.nbytes)
        rt = cuda.cudart()
        cuda.check(rt.cudaMemset(self.device.ptr, 0xFF, self.nbytes), "cudaMemset")  # NaN

    def read(self, stream) -> np.ndarray:
        stream.synchronize()
        host = np.empty(self.shape, self.dtype)
        rt = self.cuda.cudart()
        self.cuda.check(
            rt.cudaMemcpy(
                host.ctypes.data,
                self.device.ptr,
                self.nbytes,
                rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
            ),
            "cudaMemcpy",
        )
        return host

    def free(self) -> None:
        self.device.free()


def upload_nv12(cuda, nv12: np.ndarray) -> tuple[DeviceNV12, object]:
    """An NV12 host array in a pitched device buffer (pitch > width, as NVDEC pitches are)."""
    rows, w = nv12.shape
    h = rows * 2 // 3
    pitch = (w + 255) // 256 * 256
    buf = cuda.DeviceBuffer(pitch * rows)
    rt = cuda.cudart()
    cuda.check(
        rt.cudaMemcpy2D(
            buf.ptr, pitch, nv12.ctypes.data, w, w, rows, rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        ),
        "cudaMemcpy2D",
    )
    return DeviceNV12(buf.ptr, buf.ptr + pitch * h, pitch, w, h), buf


DTYPES = [np.float16, np.float32]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "fp32"])
@pytest.mark.parametrize("video", ["bikes.mp4", "carphone_pristine.mp4"])
def test_bgr_matches_cpu_path(gpu, assets, video, dtype):
    cuda, stream = gpu
    from processors.gpu_preprocess import GpuPreprocessor

    frames = read_frames(assets.videos[video], [0, 60, 119])
    out = Output(cuda, 4, INPUT_HW, dtype)
    with GpuPreprocessor(INPUT_HW, dtype, max_batch=4) as pre:
        sources = [pre.upload_bgr(stream, f) for f in frames]
        boxes = pre.preprocess(stream.handle, out.device.ptr, sources)
        got = out.read(stream)
    out.free()
    for i, frame in enumerate(frames):
        assert boxes[i] == Letterbox.fit(frame.shape[:2], INPUT_HW)
        worst, _ = report(
            f"BGR {video} frame {i} {np.dtype(dtype).name}",
            got[i],
            cpu_reference(frame, INPUT_HW, dtype),
        )
        assert worst <= within(2, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "fp32"])
def test_mixed_sizes_and_kinds_in_one_launch(gpu, assets, dtype):
    """640x272 and 176x144, BGR and NV12, in one batch; unused slots are left alone."""
    cuda, stream = gpu
    from processors.gpu_preprocess import GpuPreprocessor

    (bikes,) = read_frames(assets.videos["bikes.mp4"], [10])
    (phone,) = read_frames(assets.videos["carphone_pristine.mp4"], [10])
    nv12 = bgr_to_nv12(phone)
    out = Output(cuda, 6, INPUT_HW, dtype)
    with GpuPreprocessor(INPUT_HW, dtype, max_batch=6) as pre:
        nv12_src, nv12_buf = upload_nv12(cuda, nv12)
        sources = [pre.upload_bgr(stream, bikes), nv12_src, pre.upload_bgr(stream, phone)]
        boxes = pre.preprocess(stream, out.device.ptr, sources)
        got = out.read(stream)
        nv12_buf.free()
    out.free()
    assert [b.resized_wh for b in boxes] == [(416, 177), (416, 340), (416, 340)]
    phone_from_nv12 = cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12)
    limit = within(2, dtype)
    assert report("mixed: bikes BGR", got[0], cpu_reference(bikes, INPUT_HW, dtype))[0] <= limit
    assert (
        report("mixed: carphone NV12", got[1], cpu_reference(phone_from_nv12, INPUT_HW, dtype))[0]
        <= limit
    )
    assert report("mixed: carphone BGR", got[2], cpu_reference(phone, INPUT_HW, dtype))[0] <= limit
    assert np.isnan(got[3:].astype(np.float32)).all()  # slots past the batch untouched


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "fp32"])
def test_padding_is_exactly_grey(gpu, assets, dtype):
    cuda, stream = gpu
    from processors.gpu_preprocess import GpuPreprocessor

    (bikes,) = read_frames(assets.videos["bikes.mp4"], [0])
    box = Letterbox.fit(bikes.shape[:2], INPUT_HW)
    out = Output(cuda, 1, INPUT_HW, dtype)
    with GpuPreprocessor(INPUT_HW, dtype, max_batch=1) as pre:
        pre.preprocess(stream, out.device.ptr, [pre.upload_bgr(stream, bikes)])
        got = out.read(stream)[0]
    out.free()
    grey = np.array(np.float32(PAD_VALUE) * np.float32(1 / 255), dtype)
    top, bottom = got[:, : box.pad_y], got[:, box.pad_y + box.resized_wh[1] :]
    assert top.size and bottom.size
    assert (top == grey).all() and (bottom == grey).all()


@pytest.mark.gpu
def test_nv12_matches_opencv_conversion_of_the_same_planes(gpu, assets):
    cuda, stream = gpu
    from processors.gpu_preprocess import GpuPreprocessor

    frames = read_frames(assets.videos["bikes.mp4"], [0, 125, 249])
    out = Output(cuda, 3, INPUT_HW, np.float32)
    nv12s = [bgr_to_nv12(f) for f in frames]
    uploads = [upload_nv12(cuda, n) for n in nv12s]
    with GpuPreprocessor(INPUT_HW, np.float32, max_batch=3) as pre:
        pre.preprocess(stream, out.device.ptr, [src for src, _ in uploads])
        got = out.read(stream)
    for _, buf in uploads:
        buf.free()
    out.free()
    for i, nv12 in enumerate(nv12s):
        want = cpu_reference(cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12), INPUT_HW, np.float32)
        assert report(f"NV12 vs cvtColor, frame {i}", got[i], want)[0] <= within(2, np.float32)


@pytest.mark.gpu
def test_batch_size_is_checked(gpu):
    _, stream = gpu
    from processors.gpu_preprocess import GpuPreprocessor

    with GpuPreprocessor(INPUT_HW, np.float16, max_batch=2) as pre:
        with pytest.raises(EngineError, match="batch of 0"):
            pre.preprocess(stream, 0, [])
        src = DeviceBGR(1, 30, 10, 10)
        with pytest.raises(EngineError, match="batch of 3"):
            pre.preprocess(stream, 0, [src] * 3)
        with pytest.raises(EngineError, match="float16 or float32"):
            GpuPreprocessor(INPUT_HW, np.uint8, max_batch=1)


# -- NV12 from NVDEC ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nvdec(gpu):
    from streams.capture.nvdec import nvdec_available

    ok, reason = nvdec_available()
    if not ok:
        pytest.skip(reason)
    from streams.capture.nvdec import NvdecReader

    return NvdecReader


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp16", "fp32"])
@pytest.mark.parametrize("video", ["bikes.mp4", "carphone_pristine.mp4"])
def test_nvdec_nv12_matches_opencv_decoded_frames(gpu, nvdec, assets, video, dtype):
    cuda, stream = gpu
    from processors.gpu_preprocess import GpuPreprocessor

    indices = [0, 60, 119]
    frames = read_frames(assets.videos[video], indices)
    surfaces, planes = [], []
    with nvdec(assets.videos[video], pool_size=len(indices)) as reader:
        while (surface := reader.read()) is not None:
            if surface.index in indices:
                surfaces.append(surface)
                planes.append(download_nv12(surface))
                if len(surfaces) == len(indices):
                    break
            else:
                surface.release()
        out = Output(cuda, len(indices), INPUT_HW, dtype)
        with GpuPreprocessor(INPUT_HW, dtype, max_batch=len(indices)) as pre:
            pre.preprocess(stream, out.device.ptr, [s.nv12() for s in surfaces])
            got = out.read(stream)
        for s in surfaces:
            s.release(stream)
        out.free()
    name = np.dtype(dtype).name
    for i, (frame, nv12) in enumerate(zip(frames, planes)):
        same_planes = cpu_reference(cv2.cvtColor(nv12, cv2.COLOR_YUV2BGR_NV12), INPUT_HW, dtype)
        assert report(
            f"NVDEC {video} #{indices[i]} {name} vs cvtColor of its planes", got[i], same_planes
        )[0] <= within(2, dtype)
        worst, mean = report(
            f"NVDEC {video} #{indices[i]} {name} vs OpenCV-decoded BGR",
            got[i],
            cpu_reference(frame, INPUT_HW, dtype),
        )
        assert worst <= within(5, dtype) and mean <= 1.5


@pytest.mark.gpu
def test_nvdec_full_resolution_colour_difference(gpu, nvdec, assets):
    """No resize (input = source size): what remains is the YUV->RGB conversion alone."""
    cuda, stream = gpu
    from processors.gpu_preprocess import GpuPreprocessor

    (frame,) = read_frames(assets.videos["bikes.mp4"], [0])
    hw = frame.shape[:2]
    with nvdec(assets.videos["bikes.mp4"]) as reader:
        surface = reader.read()
        out = Output(cuda, 1, hw, np.float32)
        with GpuPreprocessor(hw, np.float32, max_batch=1) as pre:
            pre.preprocess(stream, out.device.ptr, [surface.nv12()])
            got = out.read(stream)[0]
        surface.release(stream)
        out.free()
    worst, mean = report(
        "NVDEC bikes #0 full resolution vs OpenCV-decoded BGR",
        got,
        cpu_reference(frame, hw, np.float32),
    )
    assert worst <= within(4, np.float32) and mean <= 2
