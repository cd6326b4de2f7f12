from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.options import EngineOptions
from streams.errors import EngineError


def tiny_model(path: Path, input_shape) -> Path:
    """Identity-ish graph: output = input * 2, with the given input shape."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["images", "images"], ["output"])],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, input_shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    "shape, message",
    [
        (["batch", 1, 32, 32], r"has shape \(-1, 1, 32, 32\); expected \(N, 3, H, W\)"),
        (["batch", 3, "h", "w"], "height and width must be fixed"),
        (["batch", 3, 32], r"expected \(N, 3, H, W\)"),
    ],
)
def test_wrong_input_shape_is_a_clear_error(tmp_path, shape, message):
    with pytest.raises(EngineError, match=message):
        OnnxRuntimeEngine(tiny_model(tmp_path / "m.onnx", shape), EngineOptions(max_batch=2))


def test_slot_runs_match_synchronous_runs(assets):
    engine = OnnxRuntimeEngine(assets.model_onnx, EngineOptions(max_batch=2))
    try:
        rng = np.random.default_rng(0)
        for batch in (rng.random((2, 3, 416, 416), np.float32) for _ in range(2)):
            slot = engine.acquire()
            slot.input[:2] = batch
            slot.submit(2)
            result = slot.wait()[0].copy()
            engine.release(slot)
            assert result.shape == (2, 2535, 85)
            np.testing.assert_allclose(result, engine.infer(batch)[0], rtol=1e-5, atol=1e-4)
    finally:
        engine.close()


def test_batch_size_outside_the_profile_is_refused(assets):
    engine = OnnxRuntimeEngine(assets.model_onnx, EngineOptions(max_batch=2))
    try:
        slot = engine.acquire()
        with pytest.raises(EngineError, match="outside 1..2"):
            slot.submit(3)
    finally:
        engine.close()
