"""Latest-frame slots (one per stream) and the batcher that drains them.

Each stream owns one slot holding its newest frame. A live source overwrites an unread frame
(the older one is dropped and counted), so latency stays bounded under overload; a file read
with ``pace: none`` waits for its slot to empty instead, so nothing is lost. The batcher takes
at most one frame per stream per batch and sends the batch when it holds a frame from every
active stream (or ``max_batch`` frames), or ``max_wait_ms`` after its first frame arrived.
"""

from __future__ import annotations

import threading
import time

from streams.frames import Frame


class FrameBoard:
    """All latest-frame slots behind one condition variable."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frames: dict[str, Frame] = {}
        self._active: set[str] = set()
        self._closed = False

    def register(self, stream_id: str) -> None:
        with self._cond:
            self._active.add(stream_id)

    def unregister(self, stream_id: str) -> None:
        """The stream ended or failed: stop waiting for it when forming batches."""
        with self._cond:
            self._active.discard(stream_id)
            self._cond.notify_all()

    def put(self, frame: Frame, wait: bool = False) -> bool:
        """Offer a frame. Returns True if it replaced an unread frame (a drop).

        With ``wait`` the caller blocks until its slot is empty (lossless file reading).
        """
        with self._cond:
            if wait:
                while frame.stream_id in self._frames and not self._closed:
                    self._cond.wait(0.5)
            replaced = self._frames.get(frame.stream_id)
            if replaced is not None:
                replaced.release()  # a dropped GPU frame gives its surface back at once
            self._frames[frame.stream_id] = frame
            self._cond.notify_all()
            return replaced is not None

    def wait_taken(self, stream_id: str, timeout_s: float) -> None:
        """Block until the batcher has taken this stream's frame (or the board closes)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while stream_id in self._frames and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
        if self._closed:
            self.discard(stream_id)

    def discard(self, stream_id: str) -> None:
        """Drop a stream's unread frame (its decoder is closing: surfaces must go back)."""
        with self._cond:
            frame = self._frames.pop(stream_id, None)
            if frame is not None:
                frame.release()
            self._cond.notify_all()

    def take_batch(self, max_batch: int, max_wait_s: float, timeout_s: float) -> list[Frame]:
        """Wait up to ``timeout_s`` for a first frame, then form one batch (oldest first)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._frames:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return []
                self._cond.wait(remaining)
            first = min(f.ready_mono_s for f in self._frames.values())
            send_at = first + max_wait_s
            while len(self._frames) < min(max_batch, max(1, len(self._active))):
                remaining = send_at - time.monotonic()
                if remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            oldest = sorted(self._frames.values(), key=lambda f: f.ready_mono_s)[:max_batch]
            for frame in oldest:
                del self._frames[frame.stream_id]
            self._cond.notify_all()
            return oldest

    @property
    def active_count(self) -> int:
        with self._cond:
            return len(self._active)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def release_all(self) -> None:
        """Give back every unread frame's surface (after the batcher has stopped)."""
        with self._cond:
            for frame in self._frames.values():
                frame.release()
            self._frames.clear()
