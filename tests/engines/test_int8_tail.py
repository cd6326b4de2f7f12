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
    assert [n.name for n in heads] == qdq.head_convs(model)  # the convs the Q/DQ path finds
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
