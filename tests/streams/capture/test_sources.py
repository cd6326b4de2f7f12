"""The sources a capture worker reads (streams.capture.sources), on real files and sockets.

NVDEC itself needs a GPU (test_nvdec*.py); here its source's contract is checked around a
stand-in reader: which errors mean "decode on the CPU", and surfaces back before closing.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

import streams.capture.nvdec as nvdec_module
from streams.capture.network import UnsupportedCodec
from streams.capture.source import DecoderRefused, SourceOptions, make_source
from streams.capture.sources.nvdec import NvdecSource
from streams.capture.sources.opencv_file import OpenCvFile
from streams.capture.sources.pyav_network import PyAvNetwork
from streams.errors import CaptureError
from tests.helpers import free_port
from tests.support.rtsp import make_test_clip

OPTIONS = SourceOptions("stream cam (clip)", open_timeout_s=2, read_timeout_s=2)


def read_all(source, limit: int = 10_000) -> list:
    pictures = []
    while len(pictures) < limit and (picture := source.read()) is not None:
        pictures.append(picture)
    return pictures


def test_the_registry_picks_a_source_by_url_kind_and_decoder():
    assert isinstance(make_source("a.mp4", "file", "opencv", OPTIONS), OpenCvFile)
    assert isinstance(make_source("rtsp://h/x", "network", "opencv", OPTIONS), PyAvNetwork)
    assert isinstance(make_source("a.mp4", "file", "nvdec", OPTIONS), NvdecSource)
    assert isinstance(make_source("rtsp://h/x", "network", "nvdec", OPTIONS), NvdecSource)


def test_opencv_reads_a_file_converting_only_what_is_loaded_and_rewinds(assets):
    source = make_source(str(assets.videos["bikes.mp4"]), "file", "opencv", OPTIONS)
    source.open()
    try:
        pictures = read_all(source)
        assert len(pictures) == 250 and source.skips == 0
        assert all(p.image_bgr is None for p in pictures)  # grabbed, not converted
        times = [p.pts_s for p in pictures]
        assert times[0] == 0.0 and times == sorted(times)
        assert times[-1] == pytest.approx(249 / 25, abs=0.05)
        assert source.rewind()
        again = source.read()
        assert again.pts_s == 0.0 and again.load() and again.size == (640, 272)
        assert again.image_bgr.shape == (272, 640, 3)
    finally:
        source.close()


def test_opencv_says_what_ffmpeg_said_about_a_file_it_cannot_open(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 64)
    source = make_source(str(garbage), "file", "opencv", OPTIONS)
    with pytest.raises(CaptureError, match="cannot open file") as err:
        source.open()
    assert "moov atom not found" in source.log.explain(str(err.value))


@pytest.fixture(scope="module")
def clip(assets, tmp_path_factory) -> Path:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed")
    return make_test_clip(assets.videos["bikes.mp4"], tmp_path_factory.mktemp("src") / "c.mp4")


def test_opencv_skips_a_damaged_stretch_and_carries_on(clip, tmp_path):
    data = bytearray(clip.read_bytes())
    start = int(len(data) * 0.45)
    data[start : start + 30_000] = os.urandom(30_000)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    source = make_source(str(damaged), "file", "opencv", OPTIONS)
    source.open()
    try:
        pictures = read_all(source)
    finally:
        source.close()
    assert source.skips >= 1
    assert any(p.resumed for p in pictures)
    assert pictures[0].pts_s < 3 and pictures[-1].pts_s > 7


def test_pyav_names_a_refused_camera_with_ffmpegs_words():
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/live"
    source = make_source(url, "network", "opencv", OPTIONS)
    with pytest.raises(CaptureError, match="cannot open stream") as err:
        source.open()
    reason = source.log.explain(str(err.value))
    assert "FFmpeg said: [tcp]" in reason and "refused" in reason
    assert "hunter2" not in reason and not source.stalled


class StandInReader:
    """What NvdecSource uses of NvdecReader; raises ``fail_open`` / ``fail_read``."""

    opened: ClassVar[list[StandInReader]] = []
    fail_open: Exception | None = None
    fail_read: Exception | None = None

    def __init__(
        self, url, gpu_id, loop=False, open_timeout_s=10.0, read_timeout_s=10.0, ring=None
    ):
        self.network = "://" in url
        self.loop, self.stalled, self.surfaces_held, self.closed = loop, False, 0, False
        self.next = [] if StandInReader.fail_read is None else [StandInReader.fail_read]
        if StandInReader.fail_open is not None:
            raise StandInReader.fail_open
        StandInReader.opened.append(self)

    def read(self) -> None:
        if self.next:
            raise self.next.pop()

    def close(self):
        self.closed = True


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(nvdec_module, "NvdecReader", StandInReader)
    StandInReader.fail_open = StandInReader.fail_read = None
    StandInReader.opened = []
    return StandInReader


@pytest.mark.parametrize(
    "url, error, refused",
    [
        ("clip.mp4", CaptureError("clip.mp4: NVDEC cannot open it"), True),
        ("clip.mp4", CaptureError("clip.mp4: file not found"), True),  # OpenCV will say so too
        ("rtsp://h/x", UnsupportedCodec("rtsp://h/x: codec mjpeg is not one NVDEC decodes"), True),
        ("rtsp://h/x", nvdec_module.NvdecRefused("rtsp://h/x: NVDEC cannot decode it"), True),
        (
            "rtsp://h/x",
            CaptureError("rtsp://h/x: cannot open stream"),
            False,
        ),  # down for the CPU too
    ],
)
@pytest.mark.parametrize("when", ["open", "read"])
def test_nvdec_saying_no_is_a_refusal_a_camera_that_is_down_is_not(
    stand_in, url, error, refused, when
):
    setattr(stand_in, f"fail_{when}", error)
    source = NvdecSource(url, OPTIONS)
    with pytest.raises(CaptureError) as raised:
        source.open()
        source.read()
    assert isinstance(raised.value, DecoderRefused) is refused
    assert str(raised.value) == str(error)
    source.close()


def test_nvdec_close_waits_for_surfaces_in_flight(stand_in):
    source = NvdecSource("rtsp://h/x", SourceOptions("cam", gpu=0))
    source.open()
    reader = stand_in.opened[0]
    reader.surfaces_held = 1  # a batch being preprocessed right now
    began = time.monotonic()
    threading.Timer(0.1, lambda: setattr(reader, "surfaces_held", 0)).start()
    source.close()
    assert reader.closed and time.monotonic() - began >= 0.09
