"""Capture workers: one thread per stream, reading a file or a network camera.

Pictures come from a :class:`~streams.capture.source.Source` (:mod:`streams.capture.sources`):
NVDEC's (pictures stay on the GPU) when the pipeline runs on a GPU, else the CPU's, OpenCV for
files and PyAV (FFmpeg) for network streams. Everything else is done here, once, for all of
them: sequence numbers, the fps cap and pacing (:class:`FrameClock`), statistics, status
events, file looping, reconnects, and falling back to the CPU for good when NVDEC refuses a
stream.

A worker never raises into the pipeline: every failure becomes a ``status`` event whose reason
names the stream and ends with what the decoder last logged, and a network stream reconnects
with exponential back-off (with jitter, capped) for as long as the pipeline runs. Frames go
into the stream's latest-frame slot on the FrameBoard.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streams.capture.backoff import Backoff
from streams.capture.frame_clock import FrameClock
from streams.capture.frames import Frame, new_segment
from streams.capture.source import DecoderRefused, Source, SourceOptions, make_source
from streams.config import CaptureConfig, StreamConfig
from streams.errors import CaptureError
from streams.redact import redact_url

if TYPE_CHECKING:  # the runtime sits above capture: it hands these in
    from streams.capture.packet_ring import PacketRing
    from streams.runtime.board import FrameBoard
    from streams.runtime.stats import StreamStats

__all__ = ["CaptureContext", "CaptureWorker", "FrameClock"]

logger = logging.getLogger(__name__)

StatusCallback = Callable[..., None]  # (stream_id, state, *, reason=None, attempt=None)
HAND_BACK_S = 5.0  # how long a closing NVDEC session waits for the batcher to take its frame


@dataclass
class CaptureContext:
    """What a worker needs besides its own stream config."""

    capture: CaptureConfig
    board: FrameBoard
    on_status: StatusCallback
    stop: threading.Event
    nvdec_gpu: int | None = None  # NVDEC usable on this GPU (decided once by the pipeline)


class CaptureWorker:
    """Reads one stream into its latest-frame slot until the source ends or ``stop`` is set.

    Args:
        stream: the stream's config. source: a local path or URL (``sample:`` names already
            resolved). stats: its counters. context: what all workers share.
    """

    def __init__(
        self,
        stream: StreamConfig,
        source: str,
        stats: StreamStats,
        context: CaptureContext,
        first_seq: int = 0,
        ring: PacketRing | None = None,
    ) -> None:
        self.stream = stream
        self.url = source
        self.stats = stats
        self._ctx = context
        self._kind = "file" if stream.is_file else "network"
        self._paced = stream.is_file and stream.pace == "realtime"
        self._lossless = stream.is_file and stream.pace == "none"
        policy = context.capture
        self._options = SourceOptions(
            self._name(),
            context.nvdec_gpu,
            stream.loop,
            policy.open_timeout_s,
            policy.read_timeout_s,
            ring,
        )
        self._ring = ring  # the stream records clips: its packets, on the frames' clock
        self._seq = first_seq  # a stream restarted by a reload carries on counting
        self._pts_base_s = 0.0  # added to a looping file's times so that they keep increasing
        self.stalls = 0
        self._nvdec_refused: str | None = None  # why NVDEC does not decode this stream
        self._current_clock: FrameClock | None = None  # the session's, for retune()
        self.thread = threading.Thread(target=self._run, name=f"capture-{stream.id}", daemon=True)

    def start(self) -> None:
        self._ctx.board.register(self.stream.id)
        self.thread.start()

    def stop(self) -> None:
        """Ask the worker to leave (it says nothing: whoever stops it announces why)."""
        self._ctx.stop.set()

    @property
    def next_seq(self) -> int:
        return self._seq

    def _status(self, state: str, **detail) -> None:
        self._ctx.on_status(self.stream.id, state, **detail)

    def _name(self) -> str:
        return f"stream {self.stream.id} ({redact_url(self.url)})"

    def _run(self) -> None:
        try:
            self._status("connecting")
            if self.stream.is_file:
                self._capture_file()
            else:
                self._capture_network()
        except Exception as err:  # a bug here must not kill the process or other streams
            logger.exception("stream %s: capture worker crashed", self.stream.id)
            self._status("failed", reason=redact_url(f"internal error: {err}"))
        finally:
            self._ctx.board.unregister(self.stream.id)

    # --- policy -------------------------------------------------------------------------------

    def _capture_file(self) -> None:
        """Play the file (looping if asked) until it ends, fails or ``stop``."""
        while not self._ctx.stop.is_set():
            if (outcome := self._attempt()) is None:
                continue  # NVDEC refused it: the CPU decodes it from now on
            source, decoder, frames = outcome
            if isinstance(frames, CaptureError):
                self._status("failed", reason=source.log.explain(str(frames)))
                return
            if self._ctx.stop.is_set():
                return  # the pipeline says "ended" for every stream it stops
            if frames == 0 and decoder == "nvdec":
                self._fall_back("it decoded no frame")
                continue
            if frames == 0:
                self._status(
                    "failed",
                    reason=source.log.explain(
                        f"{self._name()}: no decodable frame (not a video file, or an "
                        "unsupported codec)"
                    ),
                )
            else:
                self._status("ended")
            return

    def _capture_network(self) -> None:
        """Connect, read until the stream ends, drops or stalls, reconnect; until ``stop``."""
        policy = self._ctx.capture
        backoff = Backoff(policy.reconnect_initial_s, policy.reconnect_max_s)
        while not self._ctx.stop.is_set():
            if (outcome := self._attempt()) is None:
                continue  # the camera is fine, NVDEC is not: the CPU at once
            source, _, frames = outcome
            if isinstance(frames, CaptureError):
                reason = str(frames)
            else:
                self.stalls += source.stalled
                reason = (
                    f"no frame for {policy.read_timeout_s:g} s (stalled)"
                    if source.stalled
                    else "the stream ended or the connection dropped"
                )
                if frames:
                    backoff.reset()
            if self._ctx.stop.is_set():
                break
            reason = source.log.explain(reason)
            attempt, delay_s = backoff.next()
            self.stats.reconnects += 1
            self._status("reconnecting", reason=reason, attempt=attempt)
            logger.warning(
                "stream %s: %s; reconnect attempt %d in %.1f s",
                self.stream.id,
                reason,
                attempt,
                delay_s,
            )
            self._ctx.stop.wait(delay_s)

    def _attempt(self) -> tuple[Source, str, int | CaptureError] | None:
        """One session with the decoder of the moment: (source, decoder, frames handed to the
        board or the error that ended it); None when NVDEC refused the stream (fallen back)."""
        decoder = self._decoder()
        source = make_source(self.url, self._kind, decoder, self._options)
        try:
            return source, decoder, self._session(source)
        except CaptureError as err:
            if decoder == "nvdec" and isinstance(err, DecoderRefused):
                self._fall_back(str(err))
                return None
            return source, decoder, err

    def _decoder(self) -> str:
        """``nvdec`` when the pipeline runs on a GPU, unless the stream says ``opencv`` or
        NVDEC refused it; else ``opencv`` (the CPU)."""
        if self._nvdec_refused is not None:
            return "opencv"
        if self._ctx.nvdec_gpu is None or self.stream.decoder == "opencv":
            if self.stream.decoder == "nvdec":
                self._nvdec_refused = "NVDEC is not usable here"  # say it once, not per retry
                logger.warning(
                    "stream %s: decoder nvdec requested but NVDEC is not usable "
                    "here (see the log above); decoding on the CPU",
                    self.stream.id,
                )
            return "opencv"
        return "nvdec"

    def _fall_back(self, reason: str) -> None:
        """NVDEC will not decode this stream: the CPU decodes it from now on."""
        self._nvdec_refused = reason
        if self.stream.is_file:
            logger.warning(
                "stream %s: NVDEC cannot decode this file (%s); decoding with OpenCV instead",
                self.stream.id,
                reason,
            )
        else:
            logger.warning("stream %s: %s; decoding on the CPU instead", self.stream.id, reason)

    # --- the pump -------------------------------------------------------------------------------

    def _session(self, source: Source) -> int:
        """Open the source, pump it, close it; returns the frames handed to the board."""
        source.open()
        try:
            return self._pump(source)
        finally:
            if source.device_frames:  # its surfaces are freed on close: take the last back
                if self._ctx.stop.is_set():
                    self._ctx.board.discard(self.stream.id)
                else:  # let the batcher take the last frame before its surface is freed
                    self._ctx.board.wait_taken(self.stream.id, timeout_s=HAND_BACK_S)
            source.close()
            self.stats.skips += source.skips

    def _clock(self) -> FrameClock:
        clock = self._current_clock = FrameClock(self.stream.fps, self._paced, self._ctx.stop)
        return clock

    def retune(self, stream: StreamConfig) -> None:
        """Take ``stream``'s ``fps`` (and the rest of its entry: zones and lines are the
        completer's) without restarting: the decoder session and ``seq`` carry on."""
        self.stream = stream
        clock = self._current_clock
        if clock is not None:
            clock.set_fps(stream.fps)

    def _pump(self, source: Source) -> int:
        """Pictures into the board until the source ends, fails or ``stop``; a looping file
        starts again at its end. The first frame of a session announces ``live``."""
        ctx, stats, stream_id = self._ctx, self.stats, self.stream.id
        clock = self._clock()
        kept = kept_this_pass = 0
        last_pts_s = self._pts_base_s
        segment = new_segment()  # a new session: tracks start afresh
        if self._ring is not None:
            self._ring.restart(offset_s=self._pts_base_s, segment=segment)
        while not ctx.stop.is_set():
            picture = source.read()
            if picture is None:
                if not (self.stream.loop and kept_this_pass and source.rewind()):
                    break
                self._pts_base_s = last_pts_s + 1e-3  # keep pts increasing across loops
                clock, kept_this_pass = self._clock(), 0
                segment = new_segment()  # the file looped
                if self._ring is not None:  # a clip never spans a loop
                    self._ring.restart(offset_s=self._pts_base_s, segment=segment)
                continue
            stats.decoded += 1
            if picture.resumed:  # after damaged data, as for a reopened file
                clock = self._clock()
            pts_s = last_pts_s = self._pts_base_s + picture.pts_s
            if not clock.keep(pts_s):
                picture.release()
                continue  # over the fps cap: OpenCV skips the colour conversion too
            if not picture.load():
                continue  # undecodable: the source skips ahead on the next read
            decode_ms = (time.monotonic() - picture.since_mono_s) * 1000.0
            if not clock.wait_until_due(pts_s):
                picture.release()
                break
            if kept == 0:
                width, height = picture.size
                stats.size = (width, height)  # what placing it on a GPU costs (stats)
                self._status("live", width=width, height=height, decoder=source.decoder)
            frame = Frame(
                stream_id,
                self._seq,
                pts_s,
                time.time(),
                time.monotonic(),
                decode_ms,
                picture.image_bgr,
                picture.surface,
                segment,
            )
            self._seq += 1
            kept += 1
            kept_this_pass += 1
            if ctx.board.put(frame, wait=self._lossless):
                stats.dropped += 1
        return kept
