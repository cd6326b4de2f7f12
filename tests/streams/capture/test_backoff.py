"""Reconnect delays (streams.capture.backoff.Backoff), with the jitter drawn by the test."""

import pytest

from streams.capture.backoff import Backoff


def test_delays_double_up_to_the_cap_and_attempts_count_from_one():
    backoff = Backoff(0.1, 0.8, uniform=lambda low, high: 1.0)
    steps = [backoff.next() for _ in range(6)]
    assert [attempt for attempt, _ in steps] == [1, 2, 3, 4, 5, 6]
    assert [delay for _, delay in steps] == pytest.approx([0.1, 0.2, 0.4, 0.8, 0.8, 0.8])


def test_jitter_is_twenty_percent_either_way():
    drawn = []
    backoff = Backoff(1.0, 10.0, uniform=lambda low, high: drawn.append((low, high)) or high)
    assert backoff.next() == (1, pytest.approx(1.2))
    assert drawn == [(pytest.approx(0.8), pytest.approx(1.2))]


def test_reset_starts_again_at_attempt_one_and_the_initial_delay():
    backoff = Backoff(0.5, 10.0, uniform=lambda low, high: 1.0)
    for _ in range(3):
        backoff.next()
    backoff.reset()
    assert backoff.next() == (1, pytest.approx(0.5))
