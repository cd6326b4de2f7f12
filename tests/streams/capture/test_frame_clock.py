"""Pacing of files played like cameras (streams.capture.worker.FrameClock)."""

import threading
import time

from streams.capture.worker import FrameClock


def test_schedule_starts_at_the_first_frame_not_when_the_reader_opened():
    """Opening a hundred decoders can take seconds; that delay must not be replayed as a burst
    of late frames (each one a drop) once the first frame arrives."""
    clock = FrameClock(None, paced=True, stop=threading.Event())
    time.sleep(0.3)  # a slow decoder start
    began = time.monotonic()
    assert clock.wait_until_due(10.0)  # first frame: due at once
    assert time.monotonic() - began < 0.05
    assert clock.wait_until_due(10.1)  # the next one 100 ms later, not at once
    waited = time.monotonic() - began
    assert 0.09 <= waited < 0.2, waited


def test_schedule_is_absolute_so_late_frames_catch_up_without_drift():
    clock = FrameClock(None, paced=True, stop=threading.Event())
    began = time.monotonic()
    assert clock.wait_until_due(0.0)
    time.sleep(0.15)  # one slow decode
    assert clock.wait_until_due(0.1)  # already overdue: no wait
    assert time.monotonic() - began < 0.2
    assert clock.wait_until_due(0.3)  # back on the original schedule
    assert abs(time.monotonic() - began - 0.3) < 0.05


def test_fps_cap_keeps_frames_by_presentation_time():
    clock = FrameClock(10.0, paced=False, stop=threading.Event())
    kept = [pts / 100 for pts in range(0, 100, 4) if clock.keep(pts / 100)]  # 25 fps source
    assert kept == [0.0, 0.12, 0.2, 0.32, 0.4, 0.52, 0.6, 0.72, 0.8, 0.92]


def test_stop_ends_a_wait():
    stop = threading.Event()
    clock = FrameClock(None, paced=True, stop=stop)
    assert clock.wait_until_due(0.0)
    threading.Timer(0.1, stop.set).start()
    began = time.monotonic()
    assert not clock.wait_until_due(5.0)
    assert time.monotonic() - began < 0.5
