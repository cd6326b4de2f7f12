"""The decoding tail that implicit int8 keeps in fp16 (engines/int8_tail.py), found on real
exports: YOLOv3-tiny (the project's default model) and fixed-batch v5/v8-style heads. Each ONNX
node stands for one layer here; TensorRT's own network is walked the same way on the GPU
(tests/engines/test_tensorrt_int8.py)."""

from __future__ import annotations

import onnx
import pytest

from engines import qdq
from engines.int8_tail import LayerView, decode_tail, onnx_views
from tests.engines import yolo_exports


def _tail_of(path) -> tuple[object, list, list, list]:
    model = onnx.load(str(path))
    nodes = list(model.graph.node)
    heads, tail = decode_tail(onnx_views(model))
    return model, nodes, [nodes[i] for i in heads], [nodes[i] for i in tail]


def test_yolov3_tiny_tail_is_everything_after_its_two_output_convs(assets):
    model, nodes, heads, tail = _tail_of(assets.model_onnx)
    assert [n.name for n in heads] == qdq.head_and_tail(model)[0]  # the convs the Q/DQ path finds
    assert len(heads) == 2
    weights = {t.name: t.dims for t in model.graph.initializer}
    # 1x1 convs of 3 anchors x (5 + 80 classes): YOLOv3-tiny's two output convs
    assert [list(weights[n.input[1]]) for n in heads] == [[255, 512, 1, 1], [255, 256, 1, 1]]
    ops = {n.op_type for n in tail}
    assert "Conv" not in ops
    assert {"Sigmoid", "Exp", "Concat"} <= ops  # the box decoding, not the backbone
    outputs = {o.name for o in model.graph.output}
    assert outputs <= {name for n in tail for name in n.output}  # the tail writes the outputs
    assert len(tail) < len(nodes) // 2


@pytest.mark.parametrize("style", ["v5", "v8"])
def test_fixed_batch_exports_tail_reaches_the_output(tmp_path, style):
    path = getattr(yolo_exports, style)(tmp_path / f"{style}.onnx")
    model, nodes, heads, tail = _tail_of(path)
    ops = [n.op_type for n in tail]
    assert "Conv" not in ops and "Sigmoid" in ops
    assert model.graph.output[0].name in {name for n in tail for name in n.output}
    # v5: one 1x1 output conv per scale. v8: the class convs, and the DFL conv (constant
    # weights) stands for the box branch, so its Softmax is left to TensorRT.
    assert len(heads) == (2 if style == "v5" else 3)
    if style == "v8":
        assert "Softmax" not in ops


def test_a_graph_without_convs_has_no_tail():
    views = [LayerView(False, ("x",), ("y",)), LayerView(False, ("y",), ("z",))]
    assert decode_tail(views) == ([], [])


def test_branches_that_meet_again_are_counted_once():
    # conv a -> conv b (head) -> sigmoid -> add <- exp <- (b); a also feeds conv c (head)
    views = [
        LayerView(True, ("in",), ("a",)),
        LayerView(True, ("a",), ("b",)),
        LayerView(False, ("b",), ("s",)),
        LayerView(False, ("b",), ("e",)),
        LayerView(False, ("s", "e"), ("out",)),
        LayerView(True, ("a",), ("c",)),
    ]
    assert decode_tail(views) == ([1, 5], [2, 3, 4])


def test_qdq_with_the_tail_float_quantizes_the_body_concat_and_not_the_tails(
    assets, tmp_path, monkeypatch
):
    """``qdq.KEEP_TAIL_FLOAT`` (int8_accuracy.py --tail-float): with Concat among the ops to
    quantize, the backbone's route Concat reads int8 and the decoding tail's Concats do not,
    the CPU stand-in for TensorRT running the body in int8 and the tail in fp16."""
    from processors.calibration import calibration_set

    monkeypatch.setattr(qdq, "OP_TYPES", ["Conv", "MatMul", "Gemm", "Concat"])
    monkeypatch.setattr(qdq, "KEEP_TAIL_FLOAT", True)
    source = onnx.load(str(assets.model_onnx))
    tail = set(qdq.head_and_tail(source)[1])
    frames = calibration_set([str(p) for p in assets.videos.values()], (416, 416), 8)
    model = onnx.load(str(qdq.make_qdq(assets.model_onnx, frames, tmp_path)))
    dequantized = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    concats = [n for n in model.graph.node if n.op_type == "Concat"]
    reads_int8 = {n.name: any(i in dequantized for i in n.input) for n in concats}
    assert {name for name, q in reads_int8.items() if q} == {
        n.name for n in source.graph.node if n.op_type == "Concat" and n.name not in tail
    }
    tail_concats = tail & set(reads_int8)
    assert len(tail_concats) == 3  # the tail's three Concats, all float
    assert not any(reads_int8[name] for name in tail_concats)
