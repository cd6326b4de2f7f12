"""Capture workers: one thread per stream, reading a file or a network camera.

Decoding is NVDEC's (frames stay on the GPU, :mod:`streams.capture.nvdec`) when the pipeline runs on a
GPU, else on the CPU: OpenCV for files, PyAV (FFmpeg) for network streams, which are demuxed on
the CPU either way (:mod:`streams.capture.network`).

A worker never raises into the pipeline: every failure becomes a ``status`` event, and a
network stream reconnects with exponential back-off (with jitter, capped) for as long as the
pipeline runs. Frames go into the stream's latest-frame slot on the FrameBoard.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2

from streams.runtime.board import FrameBoard
from streams.config import CaptureConfig, StreamConfig
from streams.errors import CaptureError
from streams.capture.frames import Frame
from streams.redact import redact_url
from streams.runtime.stats import StreamStats

if TYPE_CHECKING:
    from streams.capture.network import FrameReader
    from streams.capture.nvdec import NvdecReader

logger = logging.getLogger(__name__)

StatusCallback = Callable[..., None]  # (stream_id, state, *, reason=None, attempt=None)


@dataclass
class CaptureContext:
    """What a worker needs besides its own stream config."""

    capture: CaptureConfig
    board: FrameBoard
    on_status: StatusCallback
    stop: threading.Event
    nvdec_gpu: int | None = None  # NVDEC usable on this GPU (decided once by the pipeline)


class FrameClock:
    """The ``fps`` cap (by presentation time) and real-time pacing of files, shared by the
    OpenCV, PyAV and NVDEC paths."""

    def __init__(self, fps: float | None, paced: bool, stop: threading.Event) -> None:
        self._interval_s = 1.0 / fps if fps else 0.0
        self._next_keep_s = float("-inf")
        self._paced = paced
        self._stop = stop
        self.started_mono_s = time.monotonic()
        self._first_pts_s: float | None = None
        self._first_due_mono_s = 0.0

    def keep(self, pts_s: float) -> bool:
        """False for a frame over the fps cap (skip it)."""
        if not self._interval_s:
            return True
        if pts_s < self._next_keep_s - 1e-6:
            return False
        self._next_keep_s += self._interval_s
        if self._next_keep_s <= pts_s:  # first frame, or after a gap
            self._next_keep_s = pts_s + self._interval_s
        return True

    def wait_until_due(self, pts_s: float) -> bool:
        """Paced files: sleep until this frame's time comes; False if stopped meanwhile.

        The schedule starts when the first frame is ready, not when the reader was created:
        opening a hundred decoders at once can take seconds, and a schedule that started
        before that would replay the backlog as fast as it decodes.
        """
        if not self._paced:
            return True
        if self._first_pts_s is None:
            self._first_pts_s = pts_s
            self._first_due_mono_s = time.monotonic()
        due_mono_s = self._first_due_mono_s + (pts_s - self._first_pts_s)
        # Plain sleeps, not stop.wait(): a hundred cameras waiting on one Event all queue on
        # its lock 30 times a second. Short enough to notice ``stop`` within 50 ms.
        while (delay_s := due_mono_s - time.monotonic()) > 0:
            if self._stop.is_set():
                return False
            time.sleep(min(delay_s, 0.05))
        return not self._stop.is_set()


class CaptureWorker:
    """Reads one stream into its latest-frame slot until the source ends or ``stop`` is set."""

    def __init__(self, stream: StreamConfig, source: str, stats: StreamStats,
                 context: CaptureContext) -> None:
        self.stream = stream
        self.source = source  # a local path or URL (``sample:`` names already resolved)
        self.stats = stats
        self._ctx = context
        self._seq = 0
        self._pts_base_s = 0.0
        self.stalls = 0
        self._nvdec_refused: str | None = None  # why NVDEC cannot decode this network stream
        self.thread = threading.Thread(target=self._run, name=f"capture-{stream.id}", daemon=True)

    def start(self) -> None:
        self._ctx.board.register(self.stream.id)
        self.thread.start()

    def _status(self, state: str, **detail) -> None:
        self._ctx.on_status(self.stream.id, state, **detail)

    def _run(self) -> None:
        try:
            if self.stream.is_file:
                self._run_file()
            else:
                self._run_network()
        except Exception as err:  # a bug here must not kill the process or other streams
            logger.exception("stream %s: capture worker crashed", self.stream.id)
            self._status("failed", reason=redact_url(f"internal error: {err}"))
        finally:
            self._ctx.board.unregister(self.stream.id)

    # --- files ----------------------------------------------------------------------------

    def _use_nvdec(self) -> bool:
        """NVDEC when the pipeline runs on a GPU, unless the stream says opencv."""
        if self._ctx.nvdec_gpu is None or self.stream.decoder == "opencv":
            if self.stream.decoder == "nvdec" and self._nvdec_refused is None:
                self._nvdec_refused = "NVDEC is not usable here"  # say it once, not per retry
                logger.warning("stream %s: decoder nvdec requested but NVDEC is not usable "
                               "here (see the log above); decoding on the CPU",
                               self.stream.id)
            return False
        return True

    def _run_file(self) -> None:
        if self._use_nvdec():
            try:
                if self._run_file_nvdec():
                    return
                reason = "it decoded no frame"
            except CaptureError as err:
                reason = str(err)
            logger.warning("stream %s: NVDEC cannot decode this file (%s); decoding with "
                           "OpenCV instead", self.stream.id, reason)
        self._status("connecting")
        announced = False
        while not self._ctx.stop.is_set():
            count, end_pts_s = self._play_file_once(announce=not announced)
            if count < 0:
                return  # could not open: already reported as failed
            if count == 0 and not announced:
                self._status("failed", reason=f"{self._name()}: no decodable frame "
                             "(not a video file, or an unsupported codec)")
                return
            announced = True
            if not self.stream.loop or count == 0:
                break
            self._pts_base_s = end_pts_s + 1e-3  # keep pts increasing across loops
        if not self._ctx.stop.is_set():
            self._status("ended")

    def _play_file_once(self, announce: bool) -> tuple[int, float]:
        """Play the file to its end; returns (frames, last pts), frames -1 if it cannot open.

        A damaged stretch stops OpenCV's reader for good, so the file is reopened a second
        further on (then two, ...) until frames decode again or the end is passed.
        """
        try:
            cap = self._open()
        except CaptureError as err:
            self._status("failed", reason=str(err))
            return -1, self._pts_base_s
        frames, rate = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
        duration_s = frames / rate if frames > 0 and rate > 0 else 0.0
        frame_s = 1.0 / rate if rate > 0 else 0.04
        total, pts_s, resume_s = 0, self._pts_base_s, 0.0
        try:
            while True:
                count, pts_s = self._pump(cap, announce=announce and total == 0)
                total += count
                position_s = pts_s - self._pts_base_s
                if (self._ctx.stop.is_set() or duration_s == 0
                        or position_s >= duration_s - 2 * frame_s):
                    break  # the real end of the file
                resume_s = max(resume_s, position_s) + 1.0
                if resume_s >= duration_s:
                    break
                logger.warning("%s: undecodable data after %.2f s; skipping to %.2f s",
                               self._name(), position_s, resume_s)
                self.stats.skips += 1
                cap.release()
                cap = self._open()
                cap.set(cv2.CAP_PROP_POS_MSEC, resume_s * 1000.0)
        except CaptureError as err:
            logger.warning("%s: cannot reopen after damaged data: %s", self._name(), err)
        finally:
            cap.release()
        return total, pts_s

    def _run_file_nvdec(self) -> bool:
        """Decode on the GPU; frames stay in device memory as NV12 surfaces.

        Returns False if NVDEC decodes nothing from the file, so the caller can
        fall back to OpenCV.
        """
        from streams.capture.nvdec import NvdecReader

        reader = NvdecReader(self.source, self._ctx.nvdec_gpu, loop=self.stream.loop)
        self._status("connecting")
        if self._pump_nvdec(reader, announce=True) == 0:
            return False
        if not self._ctx.stop.is_set():
            self._status("ended")
        return True

    def _pump_nvdec(self, reader: NvdecReader, announce: bool) -> int:
        """Read NVDEC surfaces into the board until the source ends, fails or ``stop``; then
        close the reader once the batcher is done with its surfaces. Returns the frame count.
        """
        paced = self.stream.is_file and self.stream.pace == "realtime"
        lossless = self.stream.is_file and self.stream.pace == "none"
        clock = FrameClock(self.stream.fps, paced, self._ctx.stop)
        count = 0
        try:
            while not self._ctx.stop.is_set():
                began_s = time.monotonic()
                surface = reader.read()
                if surface is None:
                    break
                self.stats.decoded += 1
                pts_s = surface.pts_s
                if not clock.keep(pts_s):
                    surface.release()
                    continue
                # A camera's frame counts from when its packet arrived, not from when this
                # thread started waiting for the camera.
                since_s = surface.arrived_mono_s if reader.network else began_s
                decode_ms = (time.monotonic() - since_s) * 1000.0
                if not clock.wait_until_due(pts_s):
                    surface.release()
                    break
                if count == 0 and announce:
                    self._status("live", width=surface.width, height=surface.height,
                                 decoder="nvdec")
                frame = Frame(self.stream.id, self._seq, pts_s, time.time(), time.monotonic(),
                              decode_ms, None, surface)
                self._seq += 1
                count += 1
                if self._ctx.board.put(frame, wait=lossless):
                    self.stats.dropped += 1
        finally:
            if self._ctx.stop.is_set():
                self._ctx.board.discard(self.stream.id)
            else:  # let the batcher take the last frame before its surface is freed
                self._ctx.board.wait_taken(self.stream.id, timeout_s=5.0)
            deadline = time.monotonic() + 5.0
            while reader.surfaces_held and time.monotonic() < deadline:
                time.sleep(0.005)  # frames in a batch being preprocessed right now
            reader.close()
        return count

    # --- network cameras ----------------------------------------------------------------------

    def _run_network(self) -> None:
        policy = self._ctx.capture
        backoff_s = policy.reconnect_initial_s
        attempt = seen_stalls = 0
        self._status("connecting")
        while not self._ctx.stop.is_set():
            try:
                count = self._play_network_once()
                stalls = self.stalls
                reason = (f"no frame for {policy.read_timeout_s:g} s (stalled)" if stalls > seen_stalls
                          else "the stream ended or the connection dropped")
                seen_stalls = stalls
                if count:
                    backoff_s, attempt = policy.reconnect_initial_s, 0
            except CaptureError as err:
                reason = str(err)
            if self._ctx.stop.is_set():
                break
            attempt += 1
            self.stats.reconnects += 1
            delay_s = backoff_s * random.uniform(0.8, 1.2)
            self._status("reconnecting", reason=reason, attempt=attempt)
            logger.warning("stream %s: %s; reconnect attempt %d in %.1f s",
                           self.stream.id, reason, attempt, delay_s)
            self._ctx.stop.wait(delay_s)
            backoff_s = min(backoff_s * 2, policy.reconnect_max_s)

    def _play_network_once(self) -> int:
        """Connect once and read until the stream ends, drops or stalls; returns the frames.

        NVDEC decodes when the pipeline runs on a GPU (packets demuxed on the CPU), else FFmpeg
        on the CPU; a codec NVDEC does not take switches this stream to the CPU for good, with
        the reason logged once.
        """
        from streams.capture.network import FrameReader, UnsupportedCodec

        policy = self._ctx.capture
        if self._nvdec_refused is None and self._use_nvdec():
            from streams.capture.nvdec import NvdecReader, NvdecRefused

            try:
                reader = NvdecReader(self.source, self._ctx.nvdec_gpu,
                                     open_timeout_s=policy.open_timeout_s,
                                     read_timeout_s=policy.read_timeout_s)
                count = self._pump_nvdec(reader, announce=True)
            except (UnsupportedCodec, NvdecRefused) as err:
                # The camera is fine, NVDEC is not: every later connection decodes on the CPU.
                self._nvdec_refused = str(err)
                logger.warning("stream %s: %s; decoding on the CPU instead", self.stream.id, err)
            else:
                self.stalls += reader.stalled
                return count
        frames = FrameReader(self.source, policy.open_timeout_s, policy.read_timeout_s)
        try:
            count = self._pump_network(frames)
        finally:
            frames.close()
        self.stalls += frames.stalled
        return count

    def _pump_network(self, frames: FrameReader) -> int:
        """Frames decoded on the CPU into the board until the stream ends, drops or stalls."""
        clock = FrameClock(self.stream.fps, False, self._ctx.stop)
        count = 0
        while not self._ctx.stop.is_set():
            got = frames.read()
            if got is None:
                break
            image, pts_s, arrived_mono_s = got  # latency counts from the packet's arrival
            self.stats.decoded += 1
            if not clock.keep(pts_s):
                continue
            if count == 0:
                self._status("live", width=int(image.shape[1]), height=int(image.shape[0]),
                             decoder="opencv")
            frame = Frame(self.stream.id, self._seq, pts_s, time.time(), time.monotonic(),
                          (time.monotonic() - arrived_mono_s) * 1000.0, image)
            self._seq += 1
            count += 1
            if self._ctx.board.put(frame, wait=False):
                self.stats.dropped += 1
        return count

    # --- shared -----------------------------------------------------------------------------

    def _name(self) -> str:
        return f"stream {self.stream.id} ({redact_url(self.source)})"

    def _open(self) -> cv2.VideoCapture:
        """The file, opened by OpenCV (network streams go through :mod:`streams.capture.network`)."""
        cap = cv2.VideoCapture(self.source, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"{self._name()}: cannot open file (not a video, or an "
                               "unsupported codec)")
        return cap

    def _pump(self, cap: cv2.VideoCapture, announce: bool) -> tuple[int, float]:
        """Read the file's frames until it ends, fails or ``stop``; returns (count, last pts)."""
        paced = self.stream.pace == "realtime"
        lossless = self.stream.pace == "none"
        clock = FrameClock(self.stream.fps, paced, self._ctx.stop)
        count, pts_s = 0, self._pts_base_s
        while not self._ctx.stop.is_set():
            began_s = time.monotonic()
            if not cap.grab():
                break
            pts_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            pts_s = self._pts_base_s + (pts_ms / 1000.0 if pts_ms > 0
                                        else began_s - clock.started_mono_s)
            self.stats.decoded += 1
            if not clock.keep(pts_s):
                continue  # over the fps cap: skip the colour conversion too
            ok, image = cap.retrieve()
            if not ok or image is None:
                break
            decode_ms = (time.monotonic() - began_s) * 1000.0
            if not clock.wait_until_due(pts_s):
                break
            if count == 0 and announce:
                self._status("live", width=int(image.shape[1]), height=int(image.shape[0]),
                             decoder="opencv")
            frame = Frame(self.stream.id, self._seq, pts_s, time.time(), time.monotonic(),
                          decode_ms, image)
            self._seq += 1
            count += 1
            if self._ctx.board.put(frame, wait=lossless):
                self.stats.dropped += 1
        return count, pts_s
