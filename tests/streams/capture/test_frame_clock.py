"""Pacing of files played like cameras (streams.capture.frame_clock.FrameClock).

Time is a fake clock the waits advance, so the assertions hold on a loaded machine too.
"""

import threading
import time

from streams.capture.frame_clock import FrameClock


class FakeTime:
    """A monotonic clock that only moves when something sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.on_sleep = lambda: None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds
        self.on_sleep()


def paced(fake: FakeTime, stop: threading.Event | None = None) -> FrameClock:
    return FrameClock(
        None, paced=True, stop=stop or threading.Event(), clock=fake.clock, sleep=fake.sleep
    )


def test_schedule_starts_at_the_first_frame_not_when_the_reader_opened():
    """Opening a hundred decoders can take seconds; that delay must not be replayed as a burst
    of late frames (each one a drop) once the first frame arrives."""
    fake = FakeTime()
    clock = paced(fake)
    fake.now += 0.3  # a slow decoder start
    began = fake.now
    assert clock.wait_until_due(10.0)  # first frame: due at once
    assert fake.now - began < 0.05
    assert clock.wait_until_due(10.1)  # the next one 100 ms later, not at once
    waited = fake.now - began
    assert 0.09 <= waited < 0.2, waited


def test_schedule_is_absolute_so_late_frames_catch_up_without_drift():
    fake = FakeTime()
    clock = paced(fake)
    began = fake.now
    assert clock.wait_until_due(0.0)
    fake.now += 0.15  # one slow decode
    assert clock.wait_until_due(0.1)  # already overdue: no wait
    assert fake.now - began < 0.2
    assert clock.wait_until_due(0.3)  # back on the original schedule
    assert abs(fake.now - began - 0.3) < 0.05


def test_fps_cap_keeps_frames_by_presentation_time():
    clock = FrameClock(10.0, paced=False, stop=threading.Event())
    kept = [pts / 100 for pts in range(0, 100, 4) if clock.keep(pts / 100)]  # 25 fps source
    assert kept == [0.0, 0.12, 0.2, 0.32, 0.4, 0.52, 0.6, 0.72, 0.8, 0.92]


def test_stop_ends_a_wait():
    fake, stop = FakeTime(), threading.Event()
    clock = paced(fake, stop)
    assert clock.wait_until_due(0.0)
    began = fake.now
    fake.on_sleep = lambda: stop.set() if fake.now - began >= 0.1 else None
    assert not clock.wait_until_due(5.0)
    assert fake.now - began < 0.5


def test_unpaced_clock_never_waits():
    fake = FakeTime()
    clock = FrameClock(
        None, paced=False, stop=threading.Event(), clock=fake.clock, sleep=fake.sleep
    )
    assert clock.wait_until_due(0.0) and clock.wait_until_due(100.0)
    assert fake.now == 1000.0


def test_the_real_clock_is_the_default():
    """Only a lower bound: a loaded machine may sleep longer, never shorter."""
    clock = FrameClock(None, paced=True, stop=threading.Event())
    began = time.monotonic()
    assert clock.wait_until_due(0.0)  # the schedule starts after ``began``...
    assert clock.wait_until_due(0.03)  # ...so this one is due 30 ms after it at the earliest
    assert time.monotonic() - began >= 0.03
