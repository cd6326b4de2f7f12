"""`python -m streams bench --gpu` refuses clearly where there is no TensorRT or GPU."""

import importlib.util

import pytest

from tests.helpers import REPO, run_cli


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None,
    reason="TensorRT is installed here: --gpu would run",
)
def test_bench_gpu_without_tensorrt_says_why():
    result = run_cli("bench", str(REPO / "config.yaml"), "--gpu", timeout=60)
    assert result.returncode == 1
    assert "bench --gpu needs TensorRT and an NVIDIA GPU" in result.stderr
    assert "TensorRT is not importable" in result.stderr
