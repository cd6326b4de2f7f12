"""Reading network cameras (RTSP, RTMP, HTTP, ...) with PyAV: compressed packets for NVDEC,
or pictures decoded on the CPU.

Why PyAV and not OpenCV: OpenCV's FFmpeg backend opens every stream under one process-wide
lock, and opening an RTSP camera takes one to several seconds (it waits for a keyframe), so a
process with 24 cameras brought them up one after another: about 2 s each against our test
server, 48 s for all, and again after every network outage. PyAV opens with the GIL released
and no shared lock: every camera connects at once. It also has the TCP transport and the
open/read timeouts a bad network needs.

NVDEC decodes but does not demux, and PyNvVideoCodec's own demuxer takes no options (no TCP,
no timeouts: a silent camera would block its thread for ever), so for NVDEC the packets come
from here, in Annex B form (parameter sets in front of every keyframe) as NVDEC's parser reads
them. Without a GPU the same connection decodes on the CPU (:class:`FrameReader`).

Example:
    with PacketReader("rtsp://cam/1", open_timeout_s=10, read_timeout_s=10) as packets:
        while (packet := packets.read()) is not None:
            decoder.feed(packet.data, packet.pts_s)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from streams.capture.av_errors import describe
from streams.capture.frames import DisplayClock
from streams.capture.packet_ring import PacketRing, template_of
from streams.errors import CaptureError
from streams.redact import redact_url

logger = logging.getLogger(__name__)

# FFmpeg codec names -> NVDEC's, for the codecs whose packets go to NVDEC from here.
NVDEC_CODECS = {"h264": "H264", "hevc": "HEVC"}
ANNEX_B_START = (b"\x00\x00\x01", b"\x00\x00\x00\x01")


class UnsupportedCodec(CaptureError):
    """The stream opened, but NVDEC cannot take its packets (decode it on the CPU instead)."""


@dataclass
class Packet:
    """One compressed access unit.

    Attributes:
        data: the Annex B bytes (uint8, 1-D; may view memory ``owner`` keeps alive).
        pts_s: the packet's time in seconds on the stream's clock (decode order).
        key: it starts a GOP (a decoder can begin here).
        arrived_mono_s: ``time.monotonic()`` when it came off the network (latency base).
        owner: what holds ``data``'s memory (keep the packet until the decoder has read it).
    """

    data: np.ndarray
    pts_s: float
    key: bool
    arrived_mono_s: float
    owner: Any = None


def _av() -> Any:
    try:
        import av
    except ImportError as err:  # a core dependency; only a broken install gets here
        raise CaptureError(f"PyAV is not installed ({err}): pip install av") from err
    return av


class NetworkReader:
    """One connection to a network stream: its video track, packet by packet.

    Args:
        url: what FFmpeg can open (credentials are redacted from every message and log).
        open_timeout_s, read_timeout_s: give up opening, or on a read that gets nothing,
            after this long (``capture.open_timeout_s`` / ``read_timeout_s``).

    Attributes:
        name: the URL with its password hidden. codec: FFmpeg's codec name (``h264``...).
        width, height: picture size. fps: the stream's frame rate (0 when unknown).
        reorders: the stream may have B-frames (pictures are shown in another order than
            sent), so a decoder must hold pictures back; cameras seldom do.
        stalled: the last read ended because nothing came for the read timeout.
        arrived_mono_s: ``time.monotonic()`` when the last packet came off the network.

    Raises:
        CaptureError: the stream cannot be opened or has no video track.
    """

    def __init__(
        self,
        url: str,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        ring: PacketRing | None = None,
    ) -> None:
        av = _av()
        self.name = redact_url(url)
        self._url = url
        self.read_timeout_s = float(read_timeout_s)
        self.stalled = False
        options = (
            {"rtsp_transport": "tcp"} if urlsplit(url).scheme.lower() in ("rtsp", "rtsps") else {}
        )  # TCP survives lossy links and NAT
        try:
            self._container = av.open(
                url, options=options, timeout=(float(open_timeout_s), self.read_timeout_s)
            )
        except (av.FFmpegError, OSError) as err:
            raise CaptureError(f"{self.name}: cannot open stream: {describe(err)}") from err
        self._ring = ring
        try:
            self._describe()
            if ring is not None:  # a new session: the ring starts afresh with its codec
                template = template_of(self._stream, self.name)
                ring.restart(template)
                self._ring = ring if template is not None else None
        except BaseException:
            self.close()
            raise
        # Every track is read, so that audio still flowing cannot hide a frozen picture: the
        # read timeout alone restarts with each packet of any track.
        self._packets = self._container.demux()
        self._started = False  # a keyframe has been read
        self._last_pts_s: float | None = None
        self._last_pts: int | None = None  # the last packet's, in time_base units
        self.arrived_mono_s = time.monotonic()
        self._clock = DisplayClock(self.fps)

    def _describe(self) -> None:
        if not self._container.streams.video:
            raise CaptureError(f"{self.name}: the stream has no video track")
        self._stream = self._container.streams.video[0]
        context = self._stream.codec_context
        if context is None:
            raise CaptureError(f"{self.name}: FFmpeg has no decoder for its video codec")
        self.codec = context.name or "?"
        self.width, self.height = int(context.width or 0), int(context.height or 0)
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self.reorders = bool(getattr(context, "has_b_frames", 0))
        self._time_base_s = float(self._stream.time_base or 0)  # a float: Fractions are slow

    def _next_packet(self) -> Any | None:
        """The next video packet with data, from the first keyframe on; None at the end, on a
        drop or a stall (no video for the read timeout)."""
        av = _av()
        began_s = time.monotonic()
        while True:
            try:
                packet = next(self._packets, None)
            except (av.FFmpegError, OSError) as err:
                self.stalled = time.monotonic() - began_s >= 0.9 * self.read_timeout_s
                logger.debug("%s: read ended: %s", self.name, describe(err))
                return None
            if packet is None:
                return None
            if packet.stream_index != self._stream.index:
                if time.monotonic() - began_s >= self.read_timeout_s:
                    self.stalled = True  # other tracks flow, the picture does not
                    return None
                continue
            if packet.size == 0:  # the flush packet FFmpeg ends a stream with
                return None
            if not self._started and not packet.is_keyframe:
                continue  # joined mid-GOP: nothing can decode these
            self._started = True
            self.arrived_mono_s = time.monotonic()
            if self._time_base_s:
                self._stamp(packet)
            if self._ring is not None and packet.pts is not None:  # a reference, no copy
                self._ring.add(packet, packet.pts * self._time_base_s)
            return packet

    def _stamp(self, packet: Any) -> None:
        """Give a packet without a pts (an RTSP stream's first ones, before RTCP has synced
        the clock) the next frame's time after the last packet's, once, on the packet itself:
        the ring, FFmpeg's decoder and NVDEC then all see one timeline. Left to each, the
        pictures were counted from 0 while the ring skipped their packets, so an event on one
        of them got a clip that began after it (seen on the H200: event at 0.36 s, clip from
        1.0 s)."""
        if packet.pts is None:
            step = round(1.0 / (self.fps or 25.0) / self._time_base_s)
            packet.pts = 0 if self._last_pts is None else self._last_pts + max(1, step)
        self._last_pts = packet.pts

    def _packet_seconds(self, pts: int | None, time_base: Any) -> float:
        """A packet's time in seconds, as sent (decode order: it may step back with
        B-frames); the first packets of an RTSP stream have none yet and count on from the
        last one (or from 0)."""
        if pts is not None and time_base:
            seconds = float(pts * time_base)
        elif self._last_pts_s is None:
            seconds = 0.0
        else:
            seconds = self._last_pts_s + (1.0 / self.fps if self.fps else 0.04)
        self._last_pts_s = seconds
        return seconds

    def close(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        self._packets = self._stream = None
        if container is not None:
            container.close()

    def __enter__(self) -> NetworkReader:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PacketReader(NetworkReader):
    """The stream's packets for NVDEC: Annex B, starting at a keyframe.

    Attributes:
        nvdec_codec: NVDEC's name for the codec (``"H264"`` or ``"HEVC"``).
        parameter_sets: SPS/PPS (and VPS) in Annex B form, put in front of every keyframe.

    Raises:
        UnsupportedCodec: the stream opened but its codec is not one NVDEC takes from here.
    """

    def __init__(
        self,
        url: str,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        ring: PacketRing | None = None,
    ) -> None:
        super().__init__(url, open_timeout_s, read_timeout_s, ring)
        self._queue: list[Any] = []
        try:
            self._set_up_for_nvdec()
        except BaseException:
            self.close()
            raise

    def _set_up_for_nvdec(self) -> None:
        self.nvdec_codec = NVDEC_CODECS.get(self.codec, "")
        if not self.nvdec_codec:
            raise UnsupportedCodec(
                f"{self.name}: codec {self.codec} is not one NVDEC decodes "
                f"from a network stream here "
                f"({', '.join(sorted(NVDEC_CODECS))})"
            )
        extradata = bytes(self._stream.codec_context.extradata or b"")
        self._filter = None
        if extradata and not extradata.startswith(ANNEX_B_START):
            # MP4-style (length-prefixed) packets, as RTMP and HTTP-MP4 carry them: FFmpeg's
            # filter rewrites them as Annex B and puts the parameter sets in band itself.
            from av.bitstream import BitStreamFilterContext

            self._filter = BitStreamFilterContext(f"{self.codec}_mp4toannexb", self._stream)
            extradata = b""
        # RTSP cameras often send the parameter sets only in the SDP (sprop-parameter-sets),
        # never in band; a decoder needs them in front of the first keyframe.
        self.parameter_sets = extradata

    def read(self) -> Packet | None:
        """The next packet; None when the stream ended, dropped or stalled (see ``stalled``).

        Packets before the first keyframe are skipped: nothing can decode them. ``pts_s`` is
        the packet's own time (decode order), for the decoder to hand back in display order.
        """
        packet = self._filtered()
        if packet is None:
            return None
        key = bool(packet.is_keyframe)
        pts_s = self._packet_seconds(packet.pts, packet.time_base)
        data = np.frombuffer(packet, np.uint8)
        if key and self.parameter_sets:
            data = np.concatenate([np.frombuffer(self.parameter_sets, np.uint8), data])
        return Packet(data, pts_s, key, self.arrived_mono_s, packet)

    def _filtered(self) -> Any | None:
        if self._filter is None:
            return self._next_packet()
        av = _av()
        while not self._queue:
            packet = self._next_packet()
            if packet is None:
                return None
            if self._ring is not None:  # the filter takes the packet's data: the ring keeps it
                packet = _copy_packet(av, packet)
            try:
                self._queue.extend(self._filter.filter(packet))
            except av.FFmpegError as err:  # a damaged packet: skip it, the next GOP heals
                logger.debug("%s: unfilterable packet skipped: %s", self.name, describe(err))
        return self._queue.pop(0)

    def close(self) -> None:
        self._filter, self._queue = None, []
        super().close()


def _copy_packet(av: Any, packet: Any) -> Any:
    """A packet with its own copy of the data and the same times and key flag."""
    copy = av.Packet(bytes(packet))
    copy.pts, copy.dts, copy.time_base = packet.pts, packet.dts, packet.time_base
    copy.is_keyframe = packet.is_keyframe
    copy.stream = packet.stream
    return copy


class FrameReader(NetworkReader):
    """The stream decoded on the CPU by FFmpeg: BGR pictures, starting at a keyframe."""

    def __init__(
        self,
        url: str,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        ring: PacketRing | None = None,
    ) -> None:
        super().__init__(url, open_timeout_s, read_timeout_s, ring)
        self._pending: list[Any] = []

    def read(self) -> tuple[np.ndarray, float, float] | None:
        """(BGR image, pts in seconds, arrival) of the next picture; None when the stream
        ended, dropped or stalled (see ``stalled``). ``arrival`` is when the packet that
        completed the picture came off the network (``time.monotonic()``)."""
        av = _av()
        while not self._pending:
            packet = self._next_packet()
            if packet is None:
                return None
            try:
                self._pending.extend(self._stream.codec_context.decode(packet))
            except av.FFmpegError as err:  # a damaged picture: skip it, as a player would
                logger.debug("%s: undecodable packet skipped: %s", self.name, describe(err))
        frame = self._pending.pop(0)
        pts_s = self._clock(self._packet_seconds(frame.pts, frame.time_base))
        return frame.to_ndarray(format="bgr24"), pts_s, self.arrived_mono_s

    def close(self) -> None:
        self._pending = []
        super().close()
