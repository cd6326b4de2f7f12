"""Files decoded on the CPU by OpenCV's FFmpeg backend, damaged stretches skipped over.

A damaged stretch stops OpenCV's reader for good, so the file is reopened a second further on
(then two, ...) until pictures decode again or the end is passed. OpenCV's FFmpeg prints its
complaints straight to stderr and says nothing to the caller, so it is silenced
(:func:`streams.capture.ffmpeg_log.quiet_opencv`), and when a file cannot be opened at all,
FFmpeg is asked once through PyAV why not, into the stream's log (its ``failed`` reason).
"""

from __future__ import annotations

import logging
import time

import cv2
import numpy as np

from streams.capture.av_errors import describe
from streams.capture.ffmpeg_log import DecoderLog, quiet_opencv, route_pyav
from streams.capture.file_tee import FileTee
from streams.capture.source import Picture, SourceOptions, register
from streams.errors import CaptureError

logger = logging.getLogger(__name__)


@register("file", "opencv")
class OpenCvFile:
    """One file, one pass at a time (the worker asks for the next with :meth:`rewind`)."""

    decoder = "opencv"
    device_frames = False
    stalled = False

    def __init__(self, path: str, options: SourceOptions) -> None:
        self._path = path
        self._name = options.name
        self.skips = 0
        self.log = DecoderLog(options.name)
        self._cap: cv2.VideoCapture | None = None
        self._ring = options.packets  # the stream records clips: PyAV demuxes alongside
        self._tee: FileTee | None = None

    def open(self) -> None:
        quiet_opencv()
        self.log.clear()
        self._start_pass()

    def _start_pass(self) -> None:
        self._cap = self._open_capture()
        frames, rate = self._cap.get(cv2.CAP_PROP_FRAME_COUNT), self._cap.get(cv2.CAP_PROP_FPS)
        self._duration_s = frames / rate if frames > 0 and rate > 0 else 0.0
        self._frame_s = 1.0 / rate if rate > 0 else 0.04
        self._resume_s = 0.0  # where the last skip resumed (each skip goes further)
        self._reopened()
        if self._ring is not None:
            if self._tee is None:
                self._tee = FileTee(self._path, self._ring, self._name)
            else:
                self._tee.reopen()

    def _reopened(self) -> None:
        self._position_s = 0.0  # the last grabbed picture's time since this (re)open
        self._opened_mono_s = time.monotonic()  # times pictures whose pts OpenCV gives as 0
        self._grabbed = False  # a picture was grabbed since this (re)open
        self._broken = False  # a picture would not decode: the reader is done for good

    def _open_capture(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self._path, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            why = self._ask_ffmpeg_why() or "not a video, or a codec OpenCV cannot decode"
            raise CaptureError(f"{self._name}: cannot open file: {why}")
        return cap

    def _ask_ffmpeg_why(self) -> str | None:
        """OpenCV does not say why it cannot open a file; FFmpeg through PyAV does: its
        error in words (None if it opens), and its log lines into the stream's log."""
        try:
            import av
        except ImportError:
            return None
        route_pyav(self.log)
        try:
            av.open(self._path).close()
        except Exception as err:  # noqa: BLE001 - any error here is only an explanation
            return describe(err)
        finally:
            route_pyav(None)
        return None

    def read(self) -> Picture | None:
        """The next picture, grabbed but not yet converted (:meth:`Picture.load` does that,
        for the pictures the fps cap keeps); None at the end of this pass."""
        resumed = False
        while self._cap is not None:
            if not self._broken:
                began_s = time.monotonic()
                if self._cap.grab():
                    pts_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
                    if pts_ms > 0:
                        pts_s = pts_ms / 1000.0
                    else:  # OpenCV says 0 for the first picture, and for files without times
                        pts_s = began_s - self._opened_mono_s if self._grabbed else 0.0
                    self._position_s, self._grabbed = pts_s, True
                    if self._tee is not None:
                        self._tee.advance(pts_s)
                    return Picture(pts_s, began_s, resumed=resumed, fetch=self._retrieve)
            if not self._skip_ahead():
                return None
            resumed = True
        return None

    def _retrieve(self) -> np.ndarray | None:
        ok, image = self._cap.retrieve()
        if not ok or image is None:
            self._broken = True
            return None
        return image

    def _skip_ahead(self) -> bool:
        """After the reader stopped: reopen further on if that was damage, not the end."""
        position_s = self._position_s
        if self._duration_s == 0 or position_s >= self._duration_s - 2 * self._frame_s:
            return False  # the real end of the file
        self._resume_s = max(self._resume_s, position_s) + 1.0
        if self._resume_s >= self._duration_s:
            return False
        logger.warning(
            "%s: undecodable data after %.2f s; skipping to %.2f s",
            self._name,
            position_s,
            self._resume_s,
        )
        self.skips += 1
        self._release()
        try:
            self._cap = self._open_capture()
        except CaptureError as err:
            logger.warning("%s: cannot reopen after damaged data: %s", self._name, err)
            return False
        self._cap.set(cv2.CAP_PROP_POS_MSEC, self._resume_s * 1000.0)
        self._reopened()
        if self._tee is not None:
            self._tee.reopen(self._resume_s)
        return True

    def rewind(self) -> bool:
        self._release()
        self._start_pass()
        return True

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def close(self) -> None:
        self._release()
        if self._tee is not None:
            self._tee.close()
            self._tee = None
