"""Network cameras through PyAV: the real GStreamer RTSP server, real FFmpeg.

The packets NVDEC is fed are checked the way a decoder sees them: written back to back as an
H.264 elementary stream, FFmpeg must decode one picture per packet. (NVDEC decoding them is in
``tests/streams/capture/test_nvdec_rtsp.py``, GPU host only.)
"""

import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streams.capture.network import FrameReader, PacketReader, UnsupportedCodec
from streams.capture.packet_ring import PacketRing
from streams.errors import CaptureError
from tests.helpers import free_port
from tests.support.rtsp import ffmpeg_exe


def nal_types(data: np.ndarray) -> list[int]:
    """H.264 NAL unit types in an Annex B buffer, in order."""
    raw = data.tobytes()
    types, at = [], raw.find(b"\x00\x00\x01")
    while at >= 0:
        types.append(raw[at + 3] & 0x1F)
        at = raw.find(b"\x00\x00\x01", at + 3)
    return types


def decoded_frames(stream: Path) -> int:
    """Pictures FFmpeg (through OpenCV) decodes from a raw H.264 elementary stream."""
    cap = cv2.VideoCapture(str(stream), cv2.CAP_FFMPEG)
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    return count


def read_packets(reader: PacketReader, n: int) -> list:
    packets = []
    while len(packets) < n and (packet := reader.read()) is not None:
        packets.append(packet)
    return packets


def test_rtsp_packets_are_annex_b_access_units_a_decoder_can_start_on(
    rtsp_server, rtsp_clip, tmp_path
):
    clip = cv2.VideoCapture(str(rtsp_clip))
    size = (int(clip.get(cv2.CAP_PROP_FRAME_WIDTH)), int(clip.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    clip.release()
    server = rtsp_server(path="cam1")
    with PacketReader(server.url, open_timeout_s=10, read_timeout_s=5) as reader:
        assert (reader.nvdec_codec, reader.width, reader.height) == ("H264", *size)
        assert reader.parameter_sets  # the SDP's sprop-parameter-sets, in Annex B form
        assert not reader.reorders  # no B-frames, like a camera: NVDEC may run low-latency
        packets = read_packets(reader, 60)
    assert len(packets) == 60
    # The server's clients join at a keyframe; its packet carries SPS (7) and PPS (8) in front
    # of the IDR slice (5), so a decoder can start right there.
    first = nal_types(packets[0].data)
    assert packets[0].key and 7 in first and 8 in first and 5 in first
    assert first.index(7) < first.index(5) and first.index(8) < first.index(5)
    assert all(p.data.tobytes().startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")) for p in packets)
    assert sum(p.key for p in packets) >= 2  # a keyframe every second at 25 fps
    times = [p.pts_s for p in packets]
    assert times[-1] - times[0] == pytest.approx(59 / 25, abs=0.1)
    stream = tmp_path / "cam1.h264"
    stream.write_bytes(b"".join(p.data.tobytes() for p in packets))
    assert decoded_frames(stream) == 60  # one picture per packet, none undecodable


def test_mp4_packets_are_converted_to_annex_b(assets, tmp_path):
    with PacketReader(str(assets.videos["bikes.mp4"])) as reader:
        assert (reader.nvdec_codec, reader.width, reader.height, reader.fps) == (
            "H264",
            640,
            272,
            25,
        )
        assert not reader.parameter_sets  # MP4 extradata: the filter puts them in band
        assert reader.reorders  # High profile with B-frames: NVDEC must keep its hold-back
        packets = read_packets(reader, 1000)
    assert len(packets) == 250 and packets[0].key
    # Decode order with B-frames: times step back and forth, but each picture has its own
    # (NVDEC hands them back in display order).
    assert len({p.pts_s for p in packets}) == 250
    stream = tmp_path / "bikes.h264"
    stream.write_bytes(b"".join(p.data.tobytes() for p in packets))
    assert decoded_frames(stream) == 250


def test_a_codec_nvdec_does_not_take_is_named(tmp_path):
    clip = tmp_path / "mjpeg.avi"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=10",
            "-t",
            "1",
            "-c:v",
            "mjpeg",
            str(clip),
        ],
        check=True,
    )
    with pytest.raises(UnsupportedCodec, match=r"codec mjpeg is not one NVDEC decodes"):
        PacketReader(str(clip))


def test_a_refused_camera_fails_at_once_and_hides_the_password():
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/nothing"
    began = time.monotonic()
    with pytest.raises(CaptureError, match="cannot open stream") as err:
        PacketReader(url, open_timeout_s=2, read_timeout_s=2)
    assert time.monotonic() - began < 10
    assert "hunter2" not in str(err.value)


def test_a_frozen_camera_ends_the_read_as_stalled(rtsp_server):
    server = rtsp_server(path="frozen")
    with PacketReader(server.url, open_timeout_s=10, read_timeout_s=2) as reader:
        assert len(read_packets(reader, 10)) == 10 and not reader.stalled
        server.freeze()
        began = time.monotonic()
        while reader.read() is not None:  # what was already on the wire
            assert time.monotonic() - began < 10
        assert reader.stalled
        assert time.monotonic() - began < 10


def test_cameras_connect_at_once_not_one_after_another(rtsp_server):
    """Opening a camera waits for its next keyframe (about 1 s here). OpenCV's FFmpeg backend
    holds one process-wide lock while opening, so six cameras took 2, 4, ... 12 s to come up;
    every one of them must be up about as fast as one alone."""
    import threading

    server = rtsp_server(path="many")
    began, opened = time.monotonic(), []

    def connect() -> None:
        with FrameReader(server.url, open_timeout_s=20, read_timeout_s=5) as reader:
            assert reader.read() is not None
            opened.append(time.monotonic() - began)

    threads = [threading.Thread(target=connect) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    print(f"first pictures after (s): {sorted(round(t, 2) for t in opened)}")
    assert len(opened) == 6 and max(opened) < 5.0, opened


def test_frames_decoded_on_the_cpu_are_the_clips_pictures(rtsp_server, rtsp_clip):
    server = rtsp_server(path="cpu")
    clip = cv2.VideoCapture(str(rtsp_clip))
    pictures = []
    while (got := clip.read())[0]:
        pictures.append(got[1].astype(np.int16))
    clip.release()
    with FrameReader(server.url, open_timeout_s=10, read_timeout_s=5) as reader:
        got = [reader.read() for _ in range(30)]
    assert all(g is not None for g in got)
    times = [t for _, t, _ in got]
    assert times == sorted(times) and times[-1] - times[0] == pytest.approx(29 / 25, abs=0.1)
    arrivals = [a for _, _, a in got]
    assert arrivals == sorted(arrivals) and arrivals[-1] <= time.monotonic()
    for image, _, _ in got[::10]:
        assert image.shape == pictures[0].shape
        # FFmpeg decoded both (PyAV here, OpenCV for the file): the same picture exactly,
        # but for the YUV->BGR conversion's rounding.
        best = min(float(np.abs(image.astype(np.int16) - p).mean()) for p in pictures)
        assert best < 1.5, best


@pytest.mark.parametrize("reader_class", [FrameReader, PacketReader])
def test_the_ring_holds_a_cameras_first_keyframe_on_the_pictures_clock(rtsp_server, reader_class):
    """FFmpeg hands an RTSP stream's first packet (its keyframe) over without a pts; it used
    to stay out of the ring while its picture was stamped 0, so the clip of an event in the
    camera's first second began a second after it (on the H200, NVDEC: event at 0.36 s, clip
    from 1.0 s). Now the first keyframe is in the ring, at the time its picture has."""
    server = rtsp_server(path="first")
    ring = PacketRing(keep_s=10, max_bytes=50_000_000)
    with reader_class(server.url, open_timeout_s=10, read_timeout_s=5, ring=ring) as reader:
        got = [reader.read() for _ in range(40)]
    assert all(g is not None for g in got)
    times = [g.pts_s if reader_class is PacketReader else g[1] for g in got]
    cut = ring.cut(times[0], times[-1])
    assert cut is not None and cut.entries[0].key
    shown = [e.pts_s for e in cut.entries]
    assert shown[: len(times)] == pytest.approx(times)  # the same clock, from the first one
    assert shown == sorted(shown) and shown[1] - shown[0] == pytest.approx(1 / 25, abs=1e-3)


def test_display_clock_carries_on_when_a_camera_clock_steps_back():
    from streams.capture.frames import DisplayClock

    clock = DisplayClock(25)
    times = [clock(t) for t in (0.0, 0.04, 0.08, 100.0, 100.04, 0.0, 0.04)]
    assert times[:5] == [0.0, 0.04, 0.08, 100.0, 100.04]
    assert times[5] == pytest.approx(100.08) and times[6] == pytest.approx(100.12)
