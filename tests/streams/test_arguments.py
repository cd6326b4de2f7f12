"""Ranged numbers on the command line: a bad one is argparse's one-line error, exit 2, before
any work starts (these used to end in a traceback deep inside a benchmark)."""

from __future__ import annotations

import argparse

import pytest

from streams.arguments import number_in, port_number, positive_seconds, seconds
from tests.helpers import run_cli


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (port_number, "0", 0),
        (port_number, "65535", 65535),
        (positive_seconds, "0.5", 0.5),
        (seconds, "0", 0.0),
        (number_in(int, "a level", 0, 5), "5", 5),
    ],
)
def test_values_in_range_are_converted(parse, text, expected):
    value = parse(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (port_number, "65536", "expected a port from 0 to 65535, got 65536"),
        (port_number, "http", "expected a port, got 'http'"),
        (port_number, "1.5", "expected a port, got '1.5'"),
        (positive_seconds, "0", "expected seconds above 0, got 0"),
        (positive_seconds, "inf", "expected seconds above 0, got inf"),
        (seconds, "-1", "expected seconds of at least 0, got -1"),
        (seconds, "nan", "expected seconds of at least 0, got nan"),
    ],
)
def test_values_out_of_range_name_the_range(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        parse(text)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["bench-engine", "--model", "m.onnx", "--iters", "0"],
            "argument --iters: expected a whole number of at least 1, got 0",
        ),
        (
            ["bench", "config.yaml", "--streams", "-2"],
            "argument --streams: expected a whole number of at least 1, got -2",
        ),
        (
            ["bridge", "--metrics-port", "70000"],
            "argument --metrics-port: expected a port from 0 to 65535, got 70000",
        ),
        (
            ["subscribe", "tcp://127.0.0.1:1", "--timeout", "-1"],
            "argument --timeout: expected seconds above 0, got -1",
        ),
        (
            ["evaluate-tracker", "--gt", "g", "--det", "d", "--fps", "0"],
            "argument --fps: expected frames per second above 0, got 0",
        ),
        (
            ["evaluate-tracker", "--gt", "g", "--det", "d", "--streams", "0"],
            "argument --streams: expected a whole number of at least 1, got 0",
        ),
        (
            ["evaluate-tracker", "--gt", "g", "--det", "d", "--tile", "0"],
            "argument --tile: expected a whole number of at least 1, got 0",
        ),
    ],
)
def test_the_cli_refuses_a_bad_number_in_one_line(args, message):
    result = run_cli(*args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(message), result.stderr
    assert "Traceback" not in result.stderr
