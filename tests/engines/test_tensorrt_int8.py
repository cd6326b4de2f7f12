"""INT8 TensorRT engines (both paths) on a real GPU, scored against fp32 ONNX Runtime.

Marked ``gpu``; skips without TensorRT, cuda-python or a GPU. Builder level 0 (fast builds).
YOLOv3-tiny calibrated on 64 frames of the sample videos, scored on 24 others: the bound
(mAP50 >= 0.85 of fp32) is below what ONNX Runtime's Q/DQ model reached on the CPU (0.983 on
40 frames, tests/engines/test_int8.py); the printed figures (``-s``) say what TensorRT gets.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import pytest

pytestmark = pytest.mark.gpu

trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed")
pytest.importorskip("cuda.bindings", reason="cuda-python is not installed")

from engines import cuda  # noqa: E402
from streams.errors import EngineError  # noqa: E402

try:
    _GPUS = cuda.device_count()
except EngineError:
    _GPUS = 0
if _GPUS == 0:
    pytest.skip("no CUDA GPU visible", allow_module_level=True)

from engines import engine_layers, trt_calibrator  # noqa: E402
from engines.calibration import CalibrationSet  # noqa: E402
from engines.onnxruntime_engine import OnnxRuntimeEngine  # noqa: E402
from engines.options import EngineOptions  # noqa: E402
from engines.tensorrt_build import cache_entry, resolve_int8_method  # noqa: E402
from engines.tensorrt_engine import TensorRTEngine  # noqa: E402
from processors.calibration import calibration_set  # noqa: E402
from processors.evaluation import detect, eval_frames, kept, map50  # noqa: E402

# Measured on the H200: TensorRT 8.6's entropy calibrator keeps mAP50 0.23-0.50 of fp32 on
# YOLOv3-tiny (it fits one scale per tensor to where most values lie, and the decoded output
# mixes pixel coordinates with scores); qdq keeps 0.94-0.98 and minmax 0.99-1.00 here. Not
# strict: on these 24 frames entropy scored 0.495 and 0.887 in two builds of one day
# (2026-12-04; its tactics, chosen by timing, round its poor scales differently).
ENTROPY_FALLS_SHORT = pytest.mark.xfail(
    trt.__version__.startswith("8."),
    reason="TensorRT 8.6's entropy calibrator: mAP50 0.23-0.89 of fp32 (docs/benchmarks.md)",
    raises=AssertionError,
    strict=False,
)
METHODS = [
    pytest.param(
        m,
        marks=[
            pytest.mark.skipif(
                m not in ("qdq", "auto") and not trt_calibrator.available(trt, m),
                reason=f"TensorRT {trt.__version__} has no {m} calibrator",
            ),
            *([ENTROPY_FALLS_SHORT] if m == "entropy" else []),
        ],
    )
    for m in ("qdq", "entropy", "minmax", "auto")
]


@pytest.fixture(scope="module")
def frames(assets):
    videos = [str(p) for p in assets.videos.values()]
    images = eval_frames(videos, 24, 64)
    engine = OnnxRuntimeEngine(assets.model_onnx, EngineOptions(backend="onnxruntime"))
    try:
        reference = detect(lambda b: engine.infer(b)[0], images, (416, 416), 0.25)
    finally:
        engine.close()
    return calibration_set(videos, (416, 416), 64), images, reference


def _int8_options(method: str, calibration, cache_dir) -> EngineOptions:
    return EngineOptions(
        backend="tensorrt",
        precision="int8",
        int8_method=method,
        max_batch=8,
        contexts=1,
        builder_optimization_level=0,
        cache_dir=cache_dir,
        calibration_set=calibration,
    )


def _score(engine, images, reference) -> tuple[float, float]:
    """(mAP50, kept) of ``engine``'s detections against fp32's; the engine is closed after."""
    try:

        def infer(batch):
            return engine.infer(batch)[0]

        score = map50(reference, detect(infer, images, (416, 416), 0.01))
        share = kept(reference, detect(infer, images, (416, 416), 0.25))
    finally:
        engine.close()
    return score, share


@pytest.mark.parametrize("method", METHODS)
def test_int8_engine_keeps_fp32_detections(assets, frames, tmp_path, method):
    calibration, images, reference = frames
    options = _int8_options(method, calibration, tmp_path)
    engine = TensorRTEngine(assets.model_onnx, options)
    built = engine.built
    layers = engine_layers.summary(engine.layers())
    score, share = _score(engine, images, reference)
    assert built
    print(f"\nTensorRT {trt.__version__} int8 {method}: mAP50 {score:.3f} kept {share:.3f}")
    print(f"layers by precision: {engine_layers.describe(layers)}")
    assert layers.get("int8", 0) >= 5  # the engine reads int8 in its convs, not just the flag
    assert score >= 0.85
    assert share >= 0.8
    resolved = resolve_int8_method(trt, options).int8_method
    if method == "auto":  # minmax where the calibrators are (8.6, 10), else qdq
        assert resolved == ("minmax" if trt_calibrator.available(trt, "minmax") else "qdq")
    suffix = "-qdq.onnx" if resolved == "qdq" else f"-{resolved}.calib"
    assert [p for p in tmp_path.iterdir() if p.name.endswith(suffix)]

    # Another batch profile: a new engine, but the Q/DQ model or calibration table is reused.
    def unreadable(batch_size, progress):
        raise AssertionError("a cached calibration must not read frames again")

    cached = CalibrationSet(calibration.identity, calibration.frames, "cached", unreadable)
    again = TensorRTEngine(
        assets.model_onnx,
        EngineOptions(**{**options.__dict__, "max_batch": 4, "calibration_set": cached}),
    )
    try:
        assert again.built and again.max_batch == 4
    finally:
        again.close()


@pytest.mark.skipif(
    not trt_calibrator.available(trt, "minmax"), reason=f"TensorRT {trt.__version__}: no minmax"
)
def test_minmax_with_the_decoding_tail_pinned_to_fp16(assets, frames, tmp_path, caplog):
    """engines/int8_tail.py on TensorRT's own network: the two head convs of YOLOv3-tiny and
    the tail after them are found and constrained, the build takes the constraints, and the
    engine key records them (whether int8 then keeps more at level 1: benchmarks, not here)."""
    calibration, images, reference = frames
    options = replace(_int8_options("minmax", calibration, tmp_path), keep_tail_fp16=True)
    assert cache_entry(assets.model_onnx, options).key["int8"]["tail"] == "fp16"
    with caplog.at_level(logging.INFO, logger="engines.int8_tail"):
        engine = TensorRTEngine(assets.model_onnx, options)
    layers = engine_layers.summary(engine.layers())
    score, share = _score(engine, images, reference)
    print(f"layers by precision: {engine_layers.describe(layers)}")
    assert layers.get("int8", 0) >= 5 and layers.get("fp16", 0) >= 1
    print(
        f"\nTensorRT {trt.__version__} int8 minmax, tail fp16: mAP50 {score:.3f} kept {share:.3f}"
    )
    assert re.search(r"int8: 2 head convs and [1-9]\d* tail layers kept in fp16", caplog.text)
    assert score >= 0.85
    assert share >= 0.8


def test_int8_without_calibration_frames_is_an_error(assets, tmp_path):
    options = EngineOptions(
        backend="tensorrt", precision="int8", cache_dir=tmp_path, builder_optimization_level=0
    )
    with pytest.raises(EngineError, match="int8 needs calibration frames"):
        TensorRTEngine(assets.model_onnx, options)
