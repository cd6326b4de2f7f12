"""What a capture worker reads pictures from: the :class:`Source` protocol and its registry.

A source opens one file or network stream with one decoder and hands out :class:`Picture` s
with their presentation times; the worker (:mod:`streams.capture.worker`) does everything
else the same way for all of them: sequence numbers, the fps cap, pacing, statistics, status
events, reconnects, looping and the NVDEC -> CPU fallback.

Each module in :mod:`streams.capture.sources` registers its sources with :func:`register`
under a URL kind (``file`` or ``network``) and a decoder (``nvdec`` or ``opencv``, the names
``status`` messages use); the registry imports every module there, so adding a source means
adding one file.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from streams.capture.ffmpeg_log import DecoderLog
from streams.errors import CaptureError

URL_KINDS = ("file", "network")
DECODERS = ("nvdec", "opencv")  # "opencv": decoded on the CPU (OpenCV or PyAV)


class DecoderRefused(CaptureError):
    """The source is there, but this decoder will not decode it: another decoder may (the
    worker falls back to the CPU for good, saying why)."""


@dataclass(slots=True)
class Picture:
    """One decoded picture, before the worker makes it a :class:`~streams.capture.frames.Frame`.

    Attributes:
        pts_s: presentation time in seconds on the source's clock (the worker shifts it to
            keep increasing across loops of a file).
        since_mono_s: the latency base, ``time.monotonic()``: when reading it began (files),
            or when the packet that completed it arrived (network streams).
        image_bgr: host BGR uint8 ``(H, W, 3)``; None for a GPU picture or until :meth:`load`.
        surface: a ``streams.capture.nvdec.DecodedSurface`` (device NV12) from NVDEC.
        resumed: the first picture after the source skipped damaged data (pacing and the fps
            cap start over, as for a reopened file).
        fetch: makes the pixels of a picture decoded this far only (OpenCV converts only the
            pictures the fps cap keeps); returns None if they cannot be had.
    """

    pts_s: float
    since_mono_s: float
    image_bgr: np.ndarray | None = None
    surface: Any = None
    resumed: bool = False
    fetch: Callable[[], np.ndarray | None] | None = None

    def load(self) -> bool:
        """Finish the pixels of a picture that is kept; False if they could not be decoded."""
        if self.fetch is not None:
            self.image_bgr, self.fetch = self.fetch(), None
        return self.image_bgr is not None or self.surface is not None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of a loaded picture."""
        if self.surface is not None:
            return int(self.surface.width), int(self.surface.height)
        return int(self.image_bgr.shape[1]), int(self.image_bgr.shape[0])

    def release(self) -> None:
        """Give a GPU surface back to its decoder at once (a picture the worker skips)."""
        if self.surface is not None:
            self.surface.release()


@dataclass(frozen=True)
class SourceOptions:
    """How to open a source.

    Attributes:
        name: how messages name the stream (``stream cam1 (rtsp://***@host/x)``).
        gpu: the GPU whose NVDEC decodes (None: no GPU decoding).
        loop: files: play again at the end (a source either loops by itself or, at the end,
            :meth:`Source.rewind` s when the worker asks).
        open_timeout_s, read_timeout_s: network streams: give up opening, or end a read that
            gets nothing, after this long.
        packets: a :class:`~streams.capture.packet_ring.PacketRing` the source appends its
            compressed packets to (the stream records clips), or None.
    """

    name: str
    gpu: int | None = None
    loop: bool = False
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    packets: Any = None


class Source(Protocol):
    """One file or network stream, opened with one decoder; used by one thread.

    Attributes:
        decoder: ``nvdec`` or ``opencv``, as the ``live`` status says.
        device_frames: pictures live in memory :meth:`close` frees (NVDEC surfaces), so the
            worker takes the last one back from the board first.
        stalled: the last :meth:`read` ended because nothing arrived for the read timeout.
        skips: damaged stretches skipped over since :meth:`open`.
        log: the last lines the decoder logged (for the reason of a failure).
    """

    decoder: str
    device_frames: bool
    stalled: bool
    skips: int
    log: DecoderLog

    def open(self) -> None:
        """Connect or open; CaptureError (DecoderRefused: try another decoder) if it cannot.
        Leaves nothing to close when it raises."""

    def read(self) -> Picture | None:
        """The next picture in display order; None at the end, on a drop or a stall."""

    def rewind(self) -> bool:
        """Start a file again (another loop); False where the source cannot (network
        streams, and sources that loop by themselves). CaptureError if it cannot reopen."""

    def close(self) -> None:
        """Free the decoder and the connection (after the last picture was handed back)."""


SourceFactory = Callable[[str, SourceOptions], Source]  # (path or URL, options)
_REGISTRY: dict[tuple[str, str], SourceFactory] = {}


def register(kind: str, decoder: str) -> Callable[[SourceFactory], SourceFactory]:
    """Class decorator: this source reads ``kind`` URLs with ``decoder``."""
    if kind not in URL_KINDS or decoder not in DECODERS:
        raise ValueError(f"unknown source kind {kind!r} or decoder {decoder!r}")

    def add(factory: SourceFactory) -> SourceFactory:
        _REGISTRY[(kind, decoder)] = factory
        return factory

    return add


@functools.cache
def _load_sources() -> None:
    from streams.capture import sources

    for module in pkgutil.iter_modules(sources.__path__):
        importlib.import_module(f"{sources.__name__}.{module.name}")


def make_source(url: str, kind: str, decoder: str, options: SourceOptions) -> Source:
    """The (unopened) source that reads ``url``, a ``kind`` URL, with ``decoder``."""
    _load_sources()
    factory = _REGISTRY.get((kind, decoder))
    if factory is None:
        raise CaptureError(f"{options.name}: no source reads a {kind} with {decoder}")
    return factory(url, options)
