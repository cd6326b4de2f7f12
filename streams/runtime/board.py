"""Latest-frame slots (one per stream) and the batcher that drains them.

Each stream owns one slot holding its newest frame. A live source overwrites an unread frame
(the older one is dropped and counted), so latency stays bounded under overload; a file read
with ``pace: none`` waits for its slot to empty instead, so nothing is lost. The batcher takes
at most one frame per stream per batch and sends the batch when it holds a frame from every
active stream (or ``max_batch`` frames), or ``max_wait_ms`` after its first frame arrived.

One lock guards the board, with one condition per waiter kind: the batcher waits on
``_frame_ready``; a lossless producer waits on its own stream's ``_slot_free``. A put or a take
wakes exactly the thread that can proceed, not all of them (with a hundred streams, waking
every producer on every frame costs more than the work itself).
"""

from __future__ import annotations

import threading
import time

from streams.capture.frames import Frame


class FrameBoard:
    """All latest-frame slots, the batcher's view of them, and their wake-ups."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame_ready = threading.Condition(self._lock)
        self._slot_free: dict[str, threading.Condition] = {}
        self._frames: dict[str, Frame] = {}
        # Capture workers per active stream: a stream restarted by a reload registers its new
        # worker while the old one may still be leaving.
        self._active: dict[str, int] = {}
        # Frames the waiting batcher needs before it can send: a put wakes it only then (or
        # for its first frame), not on every frame while a batch fills up.
        self._wanted = 1
        self._closed = False

    def register(self, stream_id: str) -> None:
        with self._lock:
            self._active[stream_id] = self._active.get(stream_id, 0) + 1
            self._slot_free.setdefault(stream_id, threading.Condition(self._lock))

    def unregister(self, stream_id: str) -> None:
        """The stream ended or failed: stop waiting for it when forming batches."""
        with self._lock:
            left = self._active.pop(stream_id, 0) - 1
            if left > 0:
                self._active[stream_id] = left
            else:  # nobody produces for it now: streams added and removed at run time
                self._slot_free.pop(stream_id, None)  # (the API's churn) leave nothing behind
            self._frame_ready.notify()

    def put(self, frame: Frame, wait: bool = False) -> bool:
        """Offer a frame. Returns True if it replaced an unread frame (a drop).

        With ``wait`` the caller blocks until its slot is empty (lossless file reading).
        """
        with self._lock:
            if wait:
                slot_free = self._slot_free.setdefault(
                    frame.stream_id, threading.Condition(self._lock)
                )
                while frame.stream_id in self._frames and not self._closed:
                    slot_free.wait(0.5)
            replaced = self._frames.get(frame.stream_id)
            if replaced is not None:
                replaced.release()  # a dropped GPU frame gives its surface back at once
            self._frames[frame.stream_id] = frame
            if len(self._frames) >= self._wanted:
                self._frame_ready.notify()
            return replaced is not None

    def wait_taken(self, stream_id: str, timeout_s: float) -> None:
        """Block until the batcher has taken this stream's frame (or the board closes)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            slot_free = self._slot_free.setdefault(stream_id, threading.Condition(self._lock))
            while stream_id in self._frames and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                slot_free.wait(remaining)
        if self._closed:
            self.discard(stream_id)

    def discard(self, stream_id: str) -> None:
        """Drop a stream's unread frame (its decoder is closing: surfaces must go back)."""
        with self._lock:
            frame = self._frames.pop(stream_id, None)
            if frame is not None:
                frame.release()
            self._wake_producer(stream_id)

    def take_batch(self, max_batch: int, max_wait_s: float, timeout_s: float) -> list[Frame]:
        """Wait up to ``timeout_s`` for a first frame, then form one batch (oldest first)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._wanted = 1
            while not self._frames:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return []
                self._frame_ready.wait(remaining)
            first = min(f.ready_mono_s for f in self._frames.values())
            send_at = first + max_wait_s
            while len(self._frames) < (wanted := min(max_batch, max(1, len(self._active)))):
                remaining = send_at - time.monotonic()
                if remaining <= 0 or self._closed:
                    break
                self._wanted = wanted  # unregister() and close() wake it regardless
                self._frame_ready.wait(remaining)
            oldest = sorted(self._frames.values(), key=lambda f: f.ready_mono_s)[:max_batch]
            for frame in oldest:
                del self._frames[frame.stream_id]
                self._wake_producer(frame.stream_id)
            return oldest

    def _wake_producer(self, stream_id: str) -> None:
        slot_free = self._slot_free.get(stream_id)
        if slot_free is not None:
            slot_free.notify()

    @property
    def active_count(self) -> int:
        with self._lock:
            return len(self._active)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._frame_ready.notify_all()
            for slot_free in self._slot_free.values():
                slot_free.notify_all()

    def release_all(self) -> None:
        """Give back every unread frame's surface (after the batcher has stopped)."""
        with self._lock:
            for frame in self._frames.values():
                frame.release()
            self._frames.clear()
