"""The FrameBoard's batching: full batches go at once, partial ones at ``max_wait``, and the
waiting batcher is woken when its batch can go, not on every frame (with a hundred streams a
wake-up per frame was a per-frame cost of the batcher thread)."""

from __future__ import annotations

import threading
import time

import numpy as np

from streams.capture.frames import Frame
from streams.runtime.board import FrameBoard


def _frame(stream_id: str, seq: int = 0) -> Frame:
    image = np.zeros((4, 4, 3), np.uint8)
    return Frame(stream_id, seq, 0.0, time.time(), time.monotonic(), 0.0, image, None, 0)


class _CountingBoard(FrameBoard):
    """Counts how often the batcher's condition returns from a wait."""

    def __init__(self) -> None:
        super().__init__()
        self.wakeups = 0
        wait = self._frame_ready.wait

        def counted(timeout=None):
            result = wait(timeout)
            self.wakeups += 1
            return result

        self._frame_ready.wait = counted  # type: ignore[method-assign]


def test_a_full_batch_goes_at_once_and_wakes_the_batcher_once() -> None:
    board = _CountingBoard()
    streams = [f"cam-{i}" for i in range(8)]
    for stream_id in streams:
        board.register(stream_id)
    board.put(_frame(streams[0]))  # the first frame: the batcher now waits for the other 7
    taken: list[list[Frame]] = []
    batcher = threading.Thread(target=lambda: taken.append(board.take_batch(8, 5.0, 1.0)))
    began = time.monotonic()
    batcher.start()
    time.sleep(0.05)  # the batcher is waiting for the rest of the batch
    for stream_id in streams[1:]:
        board.put(_frame(stream_id))
        time.sleep(0.005)  # one frame at a time, as cameras deliver them
    batcher.join(5)
    assert not batcher.is_alive()
    assert time.monotonic() - began < 2.0, "a full batch must not wait for max_wait"
    assert sorted(f.stream_id for f in taken[0]) == streams
    assert board.wakeups <= 2, f"the batcher woke {board.wakeups} times for one batch of 8"


def test_a_partial_batch_goes_after_max_wait() -> None:
    board = FrameBoard()
    for stream_id in ("a", "b", "c"):
        board.register(stream_id)
    board.put(_frame("a"))
    board.put(_frame("b"))
    began = time.monotonic()
    batch = board.take_batch(8, 0.2, 1.0)
    waited = time.monotonic() - began
    assert sorted(f.stream_id for f in batch) == ["a", "b"]
    assert waited >= 0.15, "stream c is live: the batch waits up to max_wait for it"


def test_a_stream_that_ends_releases_a_waiting_batch() -> None:
    board = FrameBoard()
    for stream_id in ("a", "b"):
        board.register(stream_id)
    board.put(_frame("a"))
    taken: list[list[Frame]] = []
    batcher = threading.Thread(target=lambda: taken.append(board.take_batch(8, 30.0, 1.0)))
    batcher.start()
    time.sleep(0.05)
    board.unregister("b")  # b will send nothing more: a's frame must not wait 30 s
    batcher.join(5)
    assert not batcher.is_alive()
    assert [f.stream_id for f in taken[0]] == ["a"]
