"""argparse types for numbers with a range, shared by the CLI and the benchmarks' options.

Why: a count of 0 or a negative number of seconds used to get through argparse and end in a
traceback deep in a benchmark (``no median for empty data``); with these types argparse says
``argument --iters: expected a whole number of at least 1, got 0`` and exits 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def number_in(
    convert: type[int] | type[float],
    what: str,
    low: float,
    high: float | None = None,
    *,
    above: bool = False,
) -> Callable[[str], int | float]:
    """An argparse ``type=``: ``convert(text)`` from ``low`` (or above it, with ``above``)
    up to ``high``; ``what`` names the value in the error (``seconds``, ``a port``)."""
    if high is not None:
        bound = f"from {low:g} to {high:g}"
    else:
        bound = f"above {low:g}" if above else f"of at least {low:g}"

    def parse(text: str) -> int | float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        too_low = value <= low if above else value < low
        if math.isnan(value) or math.isinf(value) or too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {text}")
        return value

    parse.__name__ = what  # argparse names the type in some of its own messages
    return parse


port_number = number_in(int, "a port", 0, 65535)  # 0: any free one
positive_seconds = number_in(float, "seconds", 0, above=True)
seconds = number_in(float, "seconds", 0)  # 0 allowed: warm-up windows
positive_count = number_in(int, "a whole number", 1)
count = number_in(int, "a whole number", 0)
positive_rate = number_in(float, "frames per second", 0, above=True)
