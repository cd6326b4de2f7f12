"""A user-style 640x640 YOLOv8s-class detector (random weights) for speed figures only.

Random weights give meaningless detections, so accuracy is measured on YOLOv3-tiny; this
model has the shape and cost of what users bring (YOLOv8s: ~28 GFLOPs at 640): a strided conv
backbone with SiLU to P3/P4/P5 (80/40/20 px grids), a two-conv head per scale and the
``(N, 84, 8400)`` output of Ultralytics' v8 head, with a dynamic batch.

    python benchmarks/yolo640.py /tmp/yolov8s-like-640.onnx
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = 80


def make(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    count = [0]

    def name(stem: str) -> str:
        count[0] += 1
        return f"{stem}_{count[0]}"

    def const(value: np.ndarray) -> str:
        n = name("c")
        inits.append(numpy_helper.from_array(value, n))
        return n

    def conv(x: str, cin: int, cout: int, k: int = 3, stride: int = 1, act: bool = True) -> str:
        w = rng.normal(0, np.sqrt(2 / (cin * k * k)) * 0.5, (cout, cin, k, k)).astype(np.float32)
        b = rng.normal(0, 0.01, cout).astype(np.float32)
        y = name("conv")
        nodes.append(
            helper.make_node(
                "Conv",
                [x, const(w), const(b)],
                [y],
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[k // 2] * 4,
                name=y,
            )
        )
        if not act:
            return y
        s, out = name("sig"), name("silu")
        nodes.append(helper.make_node("Sigmoid", [y], [s], name=s))
        nodes.append(helper.make_node("Mul", [y, s], [out], name=out))
        return out

    x = conv("images", 3, 32, stride=2)
    x = conv(x, 32, 64, stride=2)
    x = conv(conv(x, 64, 64), 64, 64)
    feats = []
    for cin, cout in ((64, 128), (128, 256), (256, 512)):
        x = conv(x, cin, cout, stride=2)
        x = conv(conv(x, cout, cout), cout, cout)
        feats.append((x, cout))
    rows = []
    for feat, ch in feats:
        box = conv(conv(conv(feat, ch, 64), 64, 64), 64, 4, k=1, act=False)
        cls = conv(conv(conv(feat, ch, 128), 128, 128), 128, CLASSES, k=1, act=False)
        sig = name("cls_sig")
        nodes.append(helper.make_node("Sigmoid", [cls], [sig], name=sig))
        cat = name("cat")
        nodes.append(helper.make_node("Concat", [box, sig], [cat], axis=1, name=cat))
        flat = name("flat")
        shape = const(np.array([0, 4 + CLASSES, -1], np.int64))
        nodes.append(helper.make_node("Reshape", [cat, shape], [flat], name=flat))
        rows.append(flat)
    nodes.append(helper.make_node("Concat", rows, ["output0"], axis=2, name="out"))
    graph = helper.make_graph(
        nodes,
        "yolov8s_like_640",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 84, 8400])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


if __name__ == "__main__":
    print(make(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/yolov8s-like-640.onnx")))
