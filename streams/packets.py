"""Compressed video packets of a network stream, demuxed on the CPU by OpenCV's FFmpeg.

Why: NVDEC decodes but does not demux. PyNvVideoCodec's own demuxer (``CreateDemuxer``)
takes no options: RTSP would run over UDP, and with no open or read timeout a camera that
goes silent blocks its thread for ever. OpenCV's FFmpeg backend has both (the TCP transport
and the timeouts of the OpenCV decode path, so both paths behave alike on a bad network), and
in raw mode (``CAP_PROP_FORMAT = -1``) it hands out the compressed packets instead of decoding
them: Annex B for H.264 and HEVC (it converts MP4-style packets itself), which is what NVDEC's
parser reads. Demuxing costs a few microseconds per packet; the decoding stays on the GPU.

Example:
    with PacketReader("rtsp://cam/1", open_timeout_s=10, read_timeout_s=10) as packets:
        print(packets.codec, packets.width, packets.height)
        while (packet := packets.read()) is not None:
            decoder.feed(packet.data, packet.pts_s)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from streams.errors import CaptureError
from streams.redact import redact_url

# FFmpeg's codec tags as OpenCV reports them (CAP_PROP_FOURCC) -> NVDEC codec names.
NVDEC_CODECS = {"h264": "H264", "avc1": "H264", "hevc": "HEVC", "hev1": "HEVC",
                "hvc1": "HEVC", "h265": "HEVC"}

ANNEX_B_START = (b"\x00\x00\x01", b"\x00\x00\x00\x01")


class UnsupportedCodec(CaptureError):
    """The stream opened, but NVDEC cannot take its packets (decode it with OpenCV instead)."""


@dataclass
class Packet:
    """One compressed access unit.

    Attributes:
        data: the Annex B bytes (uint8, 1-D), owned by this packet.
        pts_s: presentation time in seconds on the stream's clock (-1 when unknown).
        key: it starts a GOP (a decoder can begin here).
    """

    data: np.ndarray
    pts_s: float
    key: bool


class PacketReader:
    """Reads the compressed packets of one network stream (RTSP, RTMP, HTTP, ...).

    Args:
        url: what FFmpeg can open (credentials are redacted from every message).
        open_timeout_s, read_timeout_s: give up opening, or on a read that gets nothing,
            after this long (``capture.open_timeout_s`` / ``read_timeout_s``).

    Attributes:
        codec: NVDEC's name for the codec (``"H264"`` or ``"HEVC"``).
        width, height: picture size. fps: the stream's frame rate (0 when unknown).
        stalled: the last ``read`` returned None because nothing came for the read timeout.

    Raises:
        CaptureError: the stream cannot be opened. UnsupportedCodec: it opened, but its codec
            is not one NVDEC takes from here.
    """

    def __init__(self, url: str, open_timeout_s: float = 10.0,
                 read_timeout_s: float = 10.0) -> None:
        self.name = redact_url(url)
        self.read_timeout_s = float(read_timeout_s)
        self.stalled = False
        params = [cv2.CAP_PROP_FORMAT, -1,
                  cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
        self._cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        if not self._cap.isOpened():
            self._cap.release()
            raise CaptureError(f"{self.name}: cannot open stream (unreachable, not a video, "
                               "or an unsupported codec)")
        tag = int(self._cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little")
        tag_name = tag.decode("ascii", "replace").strip("\x00 ").lower()
        self.codec = NVDEC_CODECS.get(tag_name, "")
        if not self.codec or self._cap.get(cv2.CAP_PROP_FORMAT) != -1:
            self._cap.release()
            raise UnsupportedCodec(f"{self.name}: codec {tag_name or '?'} is not one NVDEC "
                                   f"decodes from a network stream here "
                                   f"({', '.join(sorted(set(NVDEC_CODECS.values())))})")
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.parameter_sets = self._annex_b_extradata()

    def _annex_b_extradata(self) -> bytes:
        """SPS/PPS (and VPS) from the SDP or container, when they are in Annex B form.

        RTSP cameras often send them only in the SDP (``sprop-parameter-sets``), never in
        band; NVDEC needs them in front of the first keyframe. (MP4-style extradata is not
        Annex B; FFmpeg's filter then puts the parameter sets in band itself.)
        """
        index = int(self._cap.get(cv2.CAP_PROP_CODEC_EXTRADATA_INDEX))
        if index <= 0:
            return b""
        ok, extra = self._cap.retrieve(flag=index)
        data = bytes(extra.ravel()) if ok and extra is not None else b""
        return data if data.startswith(ANNEX_B_START) else b""

    def read(self) -> Packet | None:
        """The next packet; None when the stream ended, dropped, or stalled (see ``stalled``).

        Keyframes carry the parameter sets in front, so decoding can start (or restart after
        a damaged stretch) at any keyframe.
        """
        began_s = time.monotonic()
        if not self._cap.grab():
            # FFmpeg's read timeout fired (a frozen camera) or the connection closed.
            self.stalled = time.monotonic() - began_s >= 0.9 * self.read_timeout_s
            return None
        ok, raw = self._cap.retrieve()
        if not ok or raw is None or raw.size == 0:
            return None
        key = bool(self._cap.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME))
        pts_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        data = raw.reshape(-1)  # the binding copied it out of FFmpeg's packet: ours to keep
        if key and self.parameter_sets:
            data = np.concatenate([np.frombuffer(self.parameter_sets, np.uint8), data])
        return Packet(data, pts_ms / 1000.0 if pts_ms >= 0 else -1.0, key)

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> PacketReader:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
