"""NVDEC reader (PyNvVideoCodec) on the sample videos.

The GPU tests are marked ``gpu`` and skip, with the reason ``nvdec_available`` gives, when
PyNvVideoCodec, cuda-python or a GPU with NVDEC is missing. Memory is read with
``cudaMemGetInfo`` (device-wide), so the leak bound leaves room for other allocations.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from streams.capture.nvdec import NvdecReader, nvdec_available
from streams.errors import CaptureError
from tests.support.gpu import download_nv12

LEAK_BOUND_MIB = 16  # three full decodes may not grow device memory use by more than this


def test_missing_file_is_a_capture_error(tmp_path):
    with pytest.raises(CaptureError, match="file not found"):
        NvdecReader(tmp_path / "absent.mp4")


def test_nvdec_available_always_answers_with_a_reason():
    ok, reason = nvdec_available()
    assert isinstance(ok, bool) and reason


def read_all(reader: NvdecReader, keep=()) -> tuple[list[float], list[tuple[int, int]], dict]:
    """Decode to the end, releasing every surface; returns pts, sizes, kept host planes."""
    pts, sizes, kept = [], [], {}
    while (surface := reader.read()) is not None:
        pts.append(surface.pts_s)
        sizes.append((surface.width, surface.height))
        if surface.index in keep:
            kept[surface.index] = download_nv12(surface)
        surface.release()
    return pts, sizes, kept


@pytest.mark.gpu
@pytest.mark.parametrize(
    "video, frames, size_wh, fps",
    [
        ("bikes.mp4", 250, (640, 272), 25.0),
        ("carphone_pristine.mp4", 120, (176, 144), 30000 / 1001),
    ],
)
def test_decodes_every_frame(cuda_helpers, assets, video, frames, size_wh, fps):
    with NvdecReader(assets.videos[video]) as reader:
        assert (reader.width, reader.height) == size_wh
        pts, sizes, _ = read_all(reader)
        assert reader.surfaces_held == 0
    assert len(pts) == frames
    assert set(sizes) == {size_wh}
    steps = np.diff(pts)
    assert (steps > 0).all(), "pts must increase in display order"
    assert float(np.median(steps)) == pytest.approx(1 / fps, rel=1e-3)


@pytest.mark.gpu
def test_planes_equal_ffmpeg_software_decode(cuda_helpers, assets):
    """H.264 decoding is bit-exact: NVDEC's NV12 equals FFmpeg's, frame for frame."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg not installed")
    path = assets.videos["bikes.mp4"]
    raw = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(path),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "nv12",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    frame_bytes = 640 * 272 * 3 // 2
    assert len(raw) == 250 * frame_bytes
    keep = (0, 1, 100, 249)
    with NvdecReader(path) as reader:
        _, _, kept = read_all(reader, keep)
    for index in keep:
        want = np.frombuffer(raw, np.uint8, frame_bytes, index * frame_bytes).reshape(408, 640)
        assert np.array_equal(kept[index], want), f"frame {index} differs from FFmpeg's decode"


@pytest.mark.gpu
def test_release_does_not_leak_gpu_memory(cuda_helpers, assets):
    cuda = cuda_helpers
    free_after = []
    for _ in range(3):
        with NvdecReader(assets.videos["bikes.mp4"]) as reader:
            pts, _, _ = read_all(reader)
            assert len(pts) == 250
        cuda.cudart().cudaDeviceSynchronize()
        free_after.append(cuda.mem_get_info()[0])
    growth_mib = (free_after[0] - free_after[-1]) / 2**20
    print(
        f"free GPU memory after each pass (MiB): {[round(f / 2**20) for f in free_after]}, "
        f"growth {growth_mib:.1f} MiB"
    )
    assert growth_mib <= LEAK_BOUND_MIB


@pytest.mark.gpu
def test_each_open_reader_is_one_counted_session(cuda_helpers, assets):
    from streams.capture import nvdec_sessions

    before = nvdec_sessions.open_now()
    readers = [NvdecReader(assets.videos["bikes.mp4"]) for _ in range(3)]
    assert nvdec_sessions.open_now() == before + 3
    for reader in readers:
        reader.close()
        reader.close()  # a second close counts nothing
    assert nvdec_sessions.open_now() == before


@pytest.mark.gpu
def test_read_fails_when_every_surface_is_held(cuda_helpers, assets):
    with NvdecReader(assets.videos["bikes.mp4"], pool_size=2, acquire_timeout_s=0.3) as reader:
        held = [reader.read(), reader.read()]
        assert reader.surfaces_held == 2
        with pytest.raises(CaptureError, match="still held"):
            reader.read()
        held[0].release()
        held[0].release()  # a second release is a no-op
        assert reader.surfaces_held == 1
        nxt = reader.read()
        assert nxt is not None and nxt.y_ptr == held[0].y_ptr  # the released surface


@pytest.mark.gpu
def test_release_on_a_consumer_stream(cuda_helpers, assets):
    """Release after GPU work on another stream: the reader reuses the surface in order."""
    cuda = cuda_helpers
    stream = cuda.Stream()
    with NvdecReader(assets.videos["bikes.mp4"], pool_size=2) as reader:
        count = 0
        while (surface := reader.read()) is not None:
            cuda.check(
                cuda.cudart().cudaStreamWaitEvent(stream.handle, surface.ready_event, 0),
                "cudaStreamWaitEvent",
            )
            surface.release(stream)
            count += 1
        stream.synchronize()
    stream.destroy()
    assert count == 250


@pytest.mark.gpu
def test_loop_keeps_pts_increasing(cuda_helpers, assets):
    with NvdecReader(assets.videos["bikes.mp4"], loop=True) as reader:
        pts = []
        for _ in range(320):
            surface = reader.read()
            assert surface is not None
            pts.append(surface.pts_s)
            surface.release()
        assert reader.loops == 1
    assert (np.diff(pts) > 0).all()
