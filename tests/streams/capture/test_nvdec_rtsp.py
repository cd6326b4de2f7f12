"""NVDEC decoding a live camera: the real GStreamer RTSP server, packets demuxed on the CPU.

GPU host only (marked ``gpu``; skips with the reason when NVDEC or the RTSP server is missing).
The server sends the clip's own H.264 (it does not re-encode), so every picture NVDEC decodes
from the camera must equal, bit for bit, a picture FFmpeg decodes from the file.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess

import cv2
import pytest

from streams.capture.nvdec import NvdecReader
from tests.support.gpu import download_nv12
from tests.support.rtsp import ffmpeg_exe

pytestmark = pytest.mark.gpu

LEAK_BOUND_MIB = 16


def ffmpeg_frames(clip) -> tuple[dict[str, int], int, tuple[int, int]]:
    """FFmpeg's software decode of ``clip``: {sha1 of an NV12 picture: its frame index}, the
    number of frames, (w, h)."""
    cap = cv2.VideoCapture(str(clip))
    size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(clip), "-f", "rawvideo", "-pix_fmt", "nv12", "-"],
        capture_output=True,
        check=True,
    ).stdout
    frame_bytes = size[0] * size[1] * 3 // 2
    return (
        {
            hashlib.sha1(raw[i : i + frame_bytes]).hexdigest(): i // frame_bytes
            for i in range(0, len(raw), frame_bytes)
        },
        len(raw) // frame_bytes,
        size,
    )


def test_every_picture_from_a_live_camera_equals_ffmpegs_decode_of_the_file(
    cuda_helpers, rtsp_server, rtsp_clip
):
    by_hash, frames, size = ffmpeg_frames(rtsp_clip)
    assert len(by_hash) == frames, "the test clip must not repeat a picture"
    server = rtsp_server(path="cam1")
    indices, pts = [], []
    with NvdecReader(server.url, open_timeout_s=10, read_timeout_s=5) as reader:
        assert reader.network and (reader.width, reader.height) == size
        assert reader.low_latency  # no B-frames: NVDEC hands each picture out at once
        for _ in range(60):
            surface = reader.read()
            assert surface is not None, "the camera ended early"
            digest = hashlib.sha1(download_nv12(surface).tobytes()).hexdigest()
            indices.append(by_hash.get(digest))
            pts.append(surface.pts_s)
            surface.release()
        assert reader.surfaces_held == 0
    assert None not in indices, f"pictures that match no frame of the file: {indices}"
    # Consecutive pictures of the file (the server loops it): none lost, none repeated.
    steps = {(b - a) % frames for a, b in itertools.pairwise(indices)}
    assert steps == {1}, indices
    assert pts[-1] - pts[0] == pytest.approx(59 / 25, abs=0.1)


def test_reconnecting_to_a_camera_leaks_no_gpu_memory_fds_or_threads(cuda_helpers, rtsp_server):
    cuda = cuda_helpers
    server = rtsp_server(path="cam2")

    def one_session() -> None:
        with NvdecReader(server.url, open_timeout_s=10, read_timeout_s=5) as reader:
            for _ in range(15):
                surface = reader.read()
                assert surface is not None
                surface.release()
        cuda.cudart().cudaDeviceSynchronize()

    one_session()  # first use loads libraries and caches
    free_before, fds_before = cuda.mem_get_info()[0], len(os.listdir("/proc/self/fd"))
    threads_before = len(os.listdir("/proc/self/task"))
    for _ in range(4):
        one_session()
    growth_mib = (free_before - cuda.mem_get_info()[0]) / 2**20
    fds, threads = len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task"))
    print(
        f"after 4 more sessions: GPU memory growth {growth_mib:.1f} MiB, fds "
        f"{fds_before} -> {fds}, threads {threads_before} -> {threads}"
    )
    assert growth_mib <= LEAK_BOUND_MIB
    assert fds <= fds_before and threads <= threads_before
