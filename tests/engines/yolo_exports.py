"""Small fixed-batch YOLO-like ONNX exports, built with onnx.helper, with the patterns real
exports have: Conv + SiLU stacks, Reshapes whose shape constant hard-codes the batch as 1,
Transpose, Split, Concat, Sigmoid, Softmax (DFL), grid/stride constants that broadcast.

``v5``: output ``(1, A, 5 + C)`` with objectness; ``v8``: output ``(1, 4 + C, A)``.
``broken``: a v8 model with one construct that mixes or misplaces the batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIZE = 64
CLASSES = 3


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def const(self, value: np.ndarray, stem: str = "c") -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def shape_node(self, value: list[int]) -> str:
        """A Constant node holding a Reshape target (exporters emit both kinds)."""
        out = self.name("shape")
        tensor = numpy_helper.from_array(np.asarray(value, np.int64), out)
        self.nodes.append(helper.make_node("Constant", [], [out], name=out, value=tensor))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int = 3, stride: int = 1, act=True) -> str:
        w = self.const(
            self.rng.normal(0, (2 / (cin * k * k)) ** 0.5, (cout, cin, k, k)).astype(np.float32),
            "w",
        )
        b = self.const(self.rng.normal(0, 0.1, cout).astype(np.float32), "b")
        y = self.op(
            "Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4
        )
        return self.op("Mul", [y, self.op("Sigmoid", [y])]) if act else y  # SiLU

    def save(self, path: Path, output: str, out_shape: list[int]) -> Path:
        graph = helper.make_graph(
            self.nodes,
            "yolo-like",
            [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(path))
        return path


def _backbone(g: _Builder) -> list[tuple[str, int, int]]:
    """Two feature maps: (tensor, channels, side) at strides 8 and 16."""
    x = g.conv("images", 3, 8, stride=2)  # 32
    x = g.conv(x, 8, 16, stride=2)  # 16
    p3 = g.conv(x, 16, 16, stride=2)  # 8
    p4 = g.conv(p3, 16, 16, stride=2)  # 4
    return [(p3, 16, SIZE // 8), (p4, 16, SIZE // 16)]


def v5(path: Path, seed: int = 0) -> Path:
    """YOLOv5-style: per scale Conv -> Reshape (1, 3, 5+C, s, s) -> Transpose -> Sigmoid ->
    Split xy/wh/conf -> grid and anchor maths -> Concat -> Reshape (1, 3*s*s, 5+C); Concat."""
    g = _Builder(seed)
    no = 5 + CLASSES
    rows = []
    for (feat, ch, side), stride in zip(_backbone(g), (8, 16)):
        y = g.conv(feat, ch, 3 * no, k=1, act=False)
        y = g.op("Reshape", [y, g.const(np.array([1, 3, no, side, side], np.int64), "shape")])
        y = g.op("Sigmoid", [g.op("Transpose", [y], perm=[0, 1, 3, 4, 2])])
        xy, wh, conf = (g.name("split") for _ in range(3))
        g.nodes.append(
            helper.make_node(
                "Split",
                [y, g.const(np.array([2, 2, no - 4], np.int64))],
                [xy, wh, conf],
                axis=4,
                name=g.name("Split"),
            )
        )
        gy, gx = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
        grid = (np.stack([gx, gy], -1)[None, None] - 0.5).astype(np.float32)  # (1, 1, s, s, 2)
        anchors = (np.array([[10, 13], [16, 30], [33, 23]], np.float32) * stride / 8)[
            None, :, None, None
        ]
        xy = g.op(
            "Mul",
            [
                g.op("Add", [g.op("Mul", [xy, g.const(np.float32(2))]), g.const(grid)]),
                g.const(np.float32(stride)),
            ],
        )
        wh = g.op(
            "Mul",
            [
                g.op("Pow", [g.op("Mul", [wh, g.const(np.float32(2))]), g.const(np.float32(2))]),
                g.const(anchors),
            ],
        )
        y = g.op("Concat", [xy, wh, conf], axis=4)
        rows.append(g.op("Reshape", [y, g.shape_node([1, 3 * side * side, no])]))
    out = g.op("Concat", rows, axis=1)
    return g.save(path, out, [1, 3 * (8 * 8 + 4 * 4), no])


def _v8_head(g: _Builder, broken: str | None) -> tuple[str, int]:
    """YOLOv8-style: box (DFL: Reshape (1, 4, R, A) -> Transpose -> Softmax -> Conv) and class
    branches per scale, Reshape (1, ., s*s), Concat over scales, anchors/strides, Concat."""
    reg = 4
    boxes, scores, anchors, strides = [], [], [], []
    for (feat, ch, side), stride in zip(_backbone(g), (8, 16)):
        boxes.append(
            g.op(
                "Reshape",
                [
                    g.conv(feat, ch, 4 * reg, k=1, act=False),
                    g.const(np.array([1, 4 * reg, side * side], np.int64), "shape"),
                ],
            )
        )
        scores.append(
            g.op(
                "Reshape",
                [
                    g.conv(feat, ch, CLASSES, k=1, act=False),
                    g.shape_node([1, CLASSES, side * side]),
                ],
            )
        )
        gy, gx = np.meshgrid(np.arange(side) + 0.5, np.arange(side) + 0.5, indexing="ij")
        anchors.append(np.stack([gx.reshape(-1), gy.reshape(-1)]))
        strides.append(np.full(side * side, stride, np.float32))
    count = sum(a.shape[1] for a in anchors)
    box = g.op("Concat", boxes, axis=2)  # (1, 4R, A)
    box = g.op("Reshape", [box, g.const(np.array([1, 4, reg, count], np.int64), "shape")])
    box = g.op("Softmax", [g.op("Transpose", [box], perm=[0, 2, 1, 3])], axis=1)  # (1, R, 4, A)
    dfl = g.const(np.arange(reg, dtype=np.float32).reshape(1, reg, 1, 1), "dfl")
    box = g.op(
        "Reshape", [g.op("Conv", [box, dfl]), g.const(np.array([1, 4, count], np.int64), "shape")]
    )
    lt, rb = g.name("lt"), g.name("rb")
    g.nodes.append(
        helper.make_node(
            "Split",
            [box, g.const(np.array([2, 2], np.int64))],
            [lt, rb],
            axis=1,
            name=g.name("Split"),
        )
    )
    anchor = g.const(np.concatenate(anchors, 1)[None].astype(np.float32), "anchors")  # (1, 2, A)
    x1y1, x2y2 = g.op("Sub", [anchor, lt]), g.op("Add", [anchor, rb])
    cxcy = g.op("Div", [g.op("Add", [x1y1, x2y2]), g.const(np.float32(2))])
    xywh = g.op("Concat", [cxcy, g.op("Sub", [x2y2, x1y1])], axis=1)
    xywh = g.op("Mul", [xywh, g.const(np.concatenate(strides)[None, None], "strides")])
    cls = g.op("Sigmoid", [g.op("Concat", scores, axis=2)])
    if broken == "reshape_not_batch":  # (1, C, A) -> (C, 1, A) -> Transpose back: the 1 moves
        cls = g.op("Reshape", [cls, g.const(np.array([CLASSES, 1, count], np.int64), "shape")])
        cls = g.op("Transpose", [cls], perm=[1, 0, 2])
    elif broken == "reduce_batch":  # a "normalisation" over axis 0: mixes images
        cls = g.op(
            "Div", [cls, g.op("ReduceSum", [cls, g.const(np.array([0], np.int64))], keepdims=1)]
        )
    elif broken == "flatten_batch":  # Flatten(axis=0) -> (1, C*A), then back
        cls = g.op("Flatten", [cls], axis=0)
        cls = g.op("Reshape", [cls, g.const(np.array([1, CLASSES, count], np.int64), "shape")])
    return g.op("Concat", [xywh, cls], axis=1), count


def v8(path: Path, seed: int = 1, broken: str | None = None) -> Path:
    g = _Builder(seed)
    out, count = _v8_head(g, broken)
    return g.save(path, out, [1, 4 + CLASSES, count])
