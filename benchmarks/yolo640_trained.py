"""A user-style 640x640 export with trained weights, for int8 accuracy on real detections.

``benchmarks/yolo640.py`` has the size and cost of a YOLOv8s but random weights, so its
detections mean nothing. This model has the other half of what users bring: YOLOv3-tiny's
COCO weights (the project's default model) converted at 640x640, behind an Ultralytics v8
head layout (``(1, 84, 6000)``: centre/size, then 80 class scores = objectness x class, no
objectness row), with the fixed input ``[1, 3, 640, 640]`` of a default Ultralytics export.
So an engine made from it goes through the dynamic-batch rewrite (engines/dynamic_batch.py),
the v8 decode and int8 at 640, with detections worth comparing.

    python benchmarks/yolo640_trained.py /tmp/yolov3-tiny-640-v8head.onnx
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.darknet import OUTPUT_NAME, convert_darknet  # noqa: E402
from streams.assets import fetch_assets  # noqa: E402

SIZE = 640


def make(path: Path) -> Path:
    assets = fetch_assets()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "yolov3-tiny-640.cfg"
        text = assets.darknet_cfg.read_text()
        text = re.sub(r"(?m)^width=\d+", f"width={SIZE}", text)
        cfg.write_text(re.sub(r"(?m)^height=\d+", f"height={SIZE}", text))
        darknet = convert_darknet(cfg, assets.darknet_weights, Path(tmp) / "v5.onnx")
        model = onnx.load(str(darknet))
    graph = model.graph
    rows = graph.output[0].type.tensor_type.shape.dim[1].dim_value  # boxes
    classes = graph.output[0].type.tensor_type.shape.dim[2].dim_value - 5

    def const(name: str, value: list[int]) -> str:
        graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), name))
        return name

    v5 = "v5_rows"
    for node in graph.node:
        node.output[:] = [v5 if o == OUTPUT_NAME else o for o in node.output]
    axis, one = const("v8_axis", [2]), const("v8_step", [1])
    starts_ends = {
        "v8_box": (0, 4),
        "v8_obj": (4, 5),
        "v8_cls": (5, 5 + classes),
    }
    for out, (start, end) in starts_ends.items():
        graph.node.append(
            helper.make_node(
                "Slice",
                [v5, const(f"{out}_s", [start]), const(f"{out}_e", [end]), axis, one],
                [out],
                name=out,
            )
        )
    graph.node.extend(
        [
            helper.make_node("Mul", ["v8_cls", "v8_obj"], ["v8_scores"], name="v8_scores"),
            helper.make_node("Concat", ["v8_box", "v8_scores"], ["v8_cat"], axis=2, name="v8_cat"),
            helper.make_node("Transpose", ["v8_cat"], [OUTPUT_NAME], perm=[0, 2, 1], name="v8_t"),
        ]
    )
    graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # fixed, as exported by default
    out_dims = graph.output[0].type.tensor_type.shape
    out_dims.ClearField("dim")
    for d in (1, 4 + classes, rows):
        out_dims.dim.add().dim_value = d
    del graph.value_info[:]
    onnx.checker.check_model(model)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


if __name__ == "__main__":
    print(make(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/yolov3-tiny-640-v8head.onnx")))
