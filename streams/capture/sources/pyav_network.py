"""Network streams decoded on the CPU by FFmpeg through PyAV
(:class:`streams.capture.network.FrameReader`: why PyAV, not OpenCV, is said there)."""

from __future__ import annotations

from streams.capture.ffmpeg_log import DecoderLog, route_pyav
from streams.capture.network import FrameReader
from streams.capture.source import Picture, SourceOptions, register


@register("network", "opencv")
class PyAvNetwork:
    """One connection; what FFmpeg logs meanwhile goes into :attr:`log`."""

    decoder = "opencv"  # the status name for CPU decoding
    device_frames = False
    skips = 0

    def __init__(self, url: str, options: SourceOptions) -> None:
        self._url = url
        self._options = options
        self.log = DecoderLog(options.name)
        self._reader: FrameReader | None = None

    @property
    def stalled(self) -> bool:
        return self._reader is not None and self._reader.stalled

    def open(self) -> None:
        self.log.clear()
        route_pyav(self.log)
        try:
            self._reader = FrameReader(
                self._url,
                self._options.open_timeout_s,
                self._options.read_timeout_s,
                self._options.packets,
            )
        except BaseException:
            route_pyav(None)
            raise

    def read(self) -> Picture | None:
        got = self._reader.read()
        if got is None:
            return None
        image, pts_s, arrived_mono_s = got  # latency counts from the packet's arrival
        return Picture(pts_s, arrived_mono_s, image_bgr=image)

    def rewind(self) -> bool:
        return False

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        route_pyav(None)
