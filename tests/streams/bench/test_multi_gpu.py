"""``bench --gpu --devices``: its arguments and its verdict (streams/bench/multi_gpu.py).

The measurement itself needs two GPUs (tests/test_gpu_devices.py, and the command in
docs/benchmarks.md); what decides pass or fail is pure and checked here."""

from __future__ import annotations

import argparse

import pytest

from streams.bench.multi_gpu import OF_NVDEC, P99_MS, SCALING, parse_devices, verdict
from tests.helpers import run_cli


@pytest.mark.parametrize(
    ("text", "gpus"),
    [("0,1", [0, 1]), ("cuda:0, cuda:3", [0, 3]), ("all", "all"), ("2,1,0", [2, 1, 0])],
)
def test_parse_devices(text, gpus):
    assert parse_devices(text) == gpus


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "give two GPUs or more"),
        ("0,0", "GPU 0 is listed twice"),
        ("0,gpu1", "expected GPU numbers like 0,1 or all"),
        ("", "expected GPU numbers"),
    ],
)
def test_parse_devices_refuses_what_cannot_scale(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse_devices(text)


def _row(fps: float, p99: float) -> dict:
    return {"fps": fps, "latency_p99_ms": p99}


def test_verdict_passes_at_the_bar_and_names_each_check():
    rows = [
        {"paced": True, "streams_per_gpu": 100, "one": _row(3000, 60), "all": _row(5700, P99_MS)},
        {"paced": False, "streams_per_gpu": 100, "one": _row(5200, 120), "all": _row(10_400, 150)},
    ]
    result = verdict(rows, combined_nvdec_fps=10_400 / OF_NVDEC, gpus=2)
    assert result["ok"], result
    assert [c["what"] for c in result["checks"]] == [
        "paced 100/GPU scaling",
        "paced 100/GPU p99 ms on 2 GPUs",
        "unpaced 100/GPU scaling",
        "unpaced 100/GPU of the combined NVDEC ceiling",
    ]
    assert result["checks"][0]["value"] == pytest.approx(SCALING)


@pytest.mark.parametrize(
    ("paced_all", "unpaced_all", "combined", "failed"),
    [
        (_row(5600, 50), _row(10_400, 150), 10_500, "paced 100/GPU scaling"),  # 1.87x
        (_row(6000, 101), _row(10_400, 150), 10_500, "paced 100/GPU p99 ms on 2 GPUs"),
        (_row(6000, 50), _row(9_800, 150), 10_300, "unpaced 100/GPU scaling"),
        (
            _row(6000, 50),
            _row(10_400, 150),
            11_000,
            "unpaced 100/GPU of the combined NVDEC ceiling",
        ),
    ],
)
def test_verdict_fails_on_each_bar(paced_all, unpaced_all, combined, failed):
    rows = [
        {"paced": True, "streams_per_gpu": 100, "one": _row(3000, 60), "all": paced_all},
        {"paced": False, "streams_per_gpu": 100, "one": _row(5200, 120), "all": unpaced_all},
    ]
    result = verdict(rows, combined, gpus=2)
    assert not result["ok"]
    assert [c["what"] for c in result["checks"] if not c["ok"]] == [failed]


def test_four_gpus_need_four_times_ninety_five_percent():
    rows = [{"paced": False, "streams_per_gpu": 64, "one": _row(5000, 80), "all": _row(18_900, 90)}]
    assert not verdict(rows, 0.0, gpus=4)["ok"]  # 3.78x < 3.8x
    rows[0]["all"] = _row(19_000, 90)
    assert verdict(rows, 0.0, gpus=4)["ok"]


def test_the_cli_refuses_bad_devices_in_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("streams: [{id: a, url: sample:bikes.mp4}]\n")
    result = run_cli("bench", str(config), "--gpu", "--devices", "0,0")
    assert result.returncode == 2
    assert "--devices: GPU 0 is listed twice" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("bench", str(config), "--devices", "0,1", "--duration", "1")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--devices" in result.stderr


def test_utilisation_is_over_the_gpus_the_run_used_and_per_gpu():
    from streams.bench.measure import utilisation

    out = "0, 80, 60\n1, 0, 0\n0, 90, 70\n1, 0, 0\n0, N/A, N/A\n"
    assert utilisation(out) == {
        "gpu_util_pct": 85.0,  # GPU 1 sat idle: not part of this run
        "nvdec_util_pct": 65.0,
        "per_gpu_util_pct": {"0": [85.0, 65.0], "1": [0.0, 0.0]},
    }
    both = utilisation("0, 80, 60\n1, 40, 20\n")
    assert (both["gpu_util_pct"], both["nvdec_util_pct"]) == (60.0, 40.0)
    assert utilisation("0, 0, 0\n")["gpu_util_pct"] == 0.0  # an idle host: all of it
    assert utilisation("") == {}
