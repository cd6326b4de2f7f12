"""A file's compressed packets for a :class:`~streams.capture.packet_ring.PacketRing`, read
alongside a decoder that does not give them (OpenCV's, PyNvVideoCodec's demuxer).

Why a second demuxer and not a second decoder: OpenCV decodes files and keeps its packets to
itself, and the file sources' behaviour (OpenCV's timestamps, skipping damaged data, NVDEC's
own demuxer and loop) is what the rest relies on. Demuxing the same file again with PyAV
costs no decoding, only reading packets (microseconds each): after each picture, packets are
read until the one decoded at the picture's time, so the ring runs at most a packet ahead.
"""

from __future__ import annotations

import logging
from typing import Any

from streams.capture.av_errors import describe
from streams.capture.packet_ring import PacketRing, template_of

logger = logging.getLogger(__name__)


class FileTee:
    """Demuxes ``path`` into ``ring``, following the decoder's pictures.

    Args:
        path: the file. ring: where its packets go. name: for log lines.
        loop: start the file again by itself at its end (the NVDEC reader loops inside
            itself): seconds then carry on from the last packet's, a frame later, as the
            reader's own clock does. Without ``loop`` the worker's :meth:`reopen` does it.
    """

    def __init__(self, path: str, ring: PacketRing, name: str, loop: bool = False) -> None:
        self._path = path
        self._ring = ring
        self._name = name
        self._loop = loop
        self._container: Any = None
        self._packets: Any = None
        self._offset_s = 0.0  # its own loops' shift (loop=True)
        self._last_s = 0.0
        self._failed = False
        self.reopen()

    def reopen(self, at_s: float = 0.0) -> None:
        """From the start (a new pass) or from ``at_s`` (after damaged data): the ring
        starts afresh. A file PyAV cannot read only turns the tee off (logged once)."""
        import av

        self.close()
        try:
            self._container = av.open(self._path)
            stream = self._container.streams.video[0]
            if at_s > 0:
                self._container.seek(int(at_s / stream.time_base), stream=stream)
            self._stream = stream
            self._tb = float(stream.time_base)
            self._start = stream.start_time or 0
            rate = stream.average_rate or stream.guessed_rate
            self._frame_s = 1.0 / float(rate) if rate else 0.04
            template = template_of(stream, self._name)
            if template is None:
                raise OSError("no codec template")  # logged already: the tee is off
            self._packets = self._container.demux(stream)
            self._ring.restart(template)
        except (av.FFmpegError, OSError, IndexError) as err:
            self.close()
            if not self._failed:
                self._failed = True
                logger.error("%s: cannot demux for clips: %s", self._name, describe(err))
        self._pending: Any = None

    def advance(self, pts_s: float) -> None:
        """Demux up to the packet decoded at ``pts_s`` (the decoder's picture time)."""
        if self._packets is None:
            return
        import av

        ring = self._ring
        while True:
            packet = self._pending
            self._pending = None
            if packet is None:
                try:
                    packet = next(self._packets, None)
                except (av.FFmpegError, OSError) as err:
                    logger.debug("%s: demux for clips ended: %s", self._name, describe(err))
                    packet = None
                if packet is None or packet.size == 0:
                    if not self._loop:
                        self._packets = None
                        return
                    self._offset_s = self._last_s + self._frame_s
                    self.reopen()
                    if self._packets is None:
                        return
                    continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            seconds = (stamp - self._start) * self._tb + self._offset_s if stamp is not None else 0
            decoded_at = (
                (packet.dts - self._start) * self._tb + self._offset_s
                if packet.dts is not None
                else seconds
            )
            if decoded_at > pts_s + 1e-6:
                self._pending = packet  # the next picture's
                return
            self._last_s = max(self._last_s, seconds)
            ring.add(packet, seconds)

    def close(self) -> None:
        container, self._container, self._packets = self._container, None, None
        if container is not None:
            container.close()
