"""Files and network streams decoded by NVDEC: pictures stay on the GPU as NV12 surfaces.

The decoding is :class:`streams.capture.nvdec.NvdecReader`'s (network packets demuxed on the
CPU by PyAV, whose log goes into :attr:`NvdecSource.log`). What this adds is the contract a
worker relies on: NVDEC saying no becomes :class:`~streams.capture.source.DecoderRefused`
(decode on the CPU instead), and closing waits for the surfaces still being preprocessed.
A looping file loops inside the reader, which keeps its decoder (no re-creation per loop).
"""

from __future__ import annotations

import time
from typing import Any

from streams.capture.ffmpeg_log import DecoderLog, route_pyav
from streams.capture.file_tee import FileTee
from streams.capture.network import UnsupportedCodec
from streams.capture.source import DecoderRefused, Picture, SourceOptions, register
from streams.errors import CaptureError

SURFACES_BACK_S = 5.0  # how long close() waits for batches in flight to release surfaces


@register("file", "nvdec")
@register("network", "nvdec")
class NvdecSource:
    """One NVDEC reader. The worker hands the board's last frame back before :meth:`close`."""

    decoder = "nvdec"
    device_frames = True
    skips = 0

    def __init__(self, url: str, options: SourceOptions) -> None:
        self._url = url
        self._options = options
        self._network = "://" in url
        self.log = DecoderLog(options.name)
        self._reader: Any = None  # NvdecReader, imported when opened (CUDA libraries)
        self._tee: FileTee | None = None  # a recording file's packets (PyAV, alongside)

    @property
    def stalled(self) -> bool:
        return self._reader is not None and self._reader.stalled

    def _refused(self, err: CaptureError) -> bool:
        """Whether this error means "NVDEC will not", not "the stream is not there": for a
        file, OpenCV may still read it (and says why if not); for a network stream, only a
        codec or a decoder NVDEC refuses (a camera that is down is down for the CPU too)."""
        from streams.capture.nvdec import NvdecRefused

        return not self._network or isinstance(err, UnsupportedCodec | NvdecRefused)

    def open(self) -> None:
        from streams.capture.nvdec import NvdecReader

        options = self._options
        self.log.clear()
        route_pyav(self.log)
        try:
            self._reader = NvdecReader(
                self._url,
                options.gpu,
                loop=options.loop,
                open_timeout_s=options.open_timeout_s,
                read_timeout_s=options.read_timeout_s,
                ring=options.packets if self._network else None,
            )
            if options.packets is not None and not self._network:
                # The reader's own demuxer keeps its packets; the file loops inside it.
                self._tee = FileTee(self._url, options.packets, options.name, loop=options.loop)
        except CaptureError as err:
            route_pyav(None)
            if self._refused(err):
                raise DecoderRefused(str(err)) from err
            raise
        except BaseException:
            route_pyav(None)
            raise

    def read(self) -> Picture | None:
        began_s = time.monotonic()
        try:
            surface = self._reader.read()
        except CaptureError as err:
            if self._refused(err):
                raise DecoderRefused(str(err)) from err
            raise
        if surface is None:
            return None
        if self._tee is not None:
            self._tee.advance(surface.pts_s)
        # A camera's picture counts from when its packet arrived, not from when this thread
        # started waiting for the camera.
        since_s = surface.arrived_mono_s if self._reader.network else began_s
        return Picture(surface.pts_s, since_s, surface=surface)

    def rewind(self) -> bool:
        return False  # a looping file never ends: the reader demuxes it again by itself

    def close(self) -> None:
        reader = self._reader
        if reader is not None:
            deadline = time.monotonic() + SURFACES_BACK_S
            while reader.surfaces_held and time.monotonic() < deadline:
                time.sleep(0.005)  # frames in a batch being preprocessed right now
            reader.close()
        if self._tee is not None:
            self._tee.close()
            self._tee = None
        route_pyav(None)
