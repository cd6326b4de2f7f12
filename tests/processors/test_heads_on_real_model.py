"""Both head layouts through a real model: YOLOv3-tiny as exported, and the same network
re-wired into the YOLOv8/v11 layout ``(N, 4 + C, boxes)`` with no objectness."""

from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.options import EngineOptions
from processors.letterbox import preprocess_into
from processors.yolo import decode_yolo, detect_head_format


def as_yolov8(src: Path, dst: Path) -> Path:
    """Append nodes: rows [xywh, obj, cls] -> [xywh, obj * cls], then transpose to (N, 84, B)."""
    model = onnx.load(str(src))
    graph = model.graph
    old = graph.output[0].name
    graph.initializer.extend([numpy_helper.from_array(np.array([4, 1, 80], np.int64), "v8_split")])
    graph.node.extend(
        [
            helper.make_node("Split", [old, "v8_split"], ["v8_xywh", "v8_obj", "v8_cls"], axis=2),
            helper.make_node("Mul", ["v8_cls", "v8_obj"], ["v8_scores"]),
            helper.make_node("Concat", ["v8_xywh", "v8_scores"], ["v8_rows"], axis=2),
            helper.make_node("Transpose", ["v8_rows"], ["output_v8"], perm=[0, 2, 1]),
        ]
    )
    del graph.output[:]
    graph.output.extend(
        [helper.make_tensor_value_info("output_v8", TensorProto.FLOAT, ["batch", 84, 2535])]
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


def detect(model_path: Path, image: np.ndarray):
    engine = OnnxRuntimeEngine(model_path, EngineOptions(backend="onnxruntime", max_batch=1))
    try:
        slot = engine.acquire()
        box = preprocess_into(slot.input[0], image)
        slot.submit(1)
        (output,) = slot.wait()
        engine.release(slot)
        head = detect_head_format(engine.output_specs[0].shape, 80)
        return head, decode_yolo(output[0], head, box, image.shape[:2], 0.25, 0.45)
    finally:
        engine.close()


def test_yolov8_layout_gives_the_same_detections(assets, tmp_path):
    cap = cv2.VideoCapture(str(assets.videos["bikes.mp4"]))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 123)  # the cyclist
    ok, image = cap.read()
    assert ok
    head_v5, v5 = detect(assets.model_onnx, image)
    head_v8, v8 = detect(as_yolov8(assets.model_onnx, tmp_path / "v8.onnx"), image)
    assert (head_v5, head_v8) == ("yolov5", "yolov8")
    assert len(v5) >= 2 and 0 in v5.class_ids.tolist()  # a person at least
    np.testing.assert_array_equal(v5.class_ids, v8.class_ids)
    np.testing.assert_allclose(v5.xyxy, v8.xyxy, atol=1e-3)
    np.testing.assert_allclose(v5.scores, v8.scores, atol=1e-5)
