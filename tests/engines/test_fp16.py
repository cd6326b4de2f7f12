"""The FP16 ONNX converter (TensorRT 11's strongly typed path), checked on the CPU."""

import numpy as np
import onnx

from engines.fp16 import convert_file
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.options import EngineOptions
from processors.letterbox import preprocess_into
from processors.yolo import decode_yolo
from tests.helpers import iou


def test_fp16_model_keeps_float32_io_and_the_same_detections(assets, tmp_path):
    half = convert_file(assets.model_onnx, tmp_path / "half.onnx")
    model = onnx.load(str(half))
    weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert len(weights) >= 13  # every conv weight is fp16 now
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert half.stat().st_size < assets.model_onnx.stat().st_size * 0.6

    import cv2

    cap = cv2.VideoCapture(str(assets.videos["bikes.mp4"]))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 123)
    ok, image = cap.read()
    assert ok
    results = []
    for path in (assets.model_onnx, half):
        engine = OnnxRuntimeEngine(path, EngineOptions(max_batch=1))
        try:
            batch = np.zeros((1, 3, 416, 416), np.float32)
            box = preprocess_into(batch[0], image)
            output = engine.infer(batch)[0]
            assert output.dtype == np.float32
            results.append(decode_yolo(output[0], "yolov5", box, image.shape[:2], 0.25, 0.45))
        finally:
            engine.close()
    full, reduced = results
    assert len(full) >= 2
    for xyxy, score, class_id in zip(full.xyxy, full.scores, full.class_ids):
        match = [
            i
            for i in range(len(reduced))
            if reduced.class_ids[i] == class_id and iou(reduced.xyxy[i], xyxy) > 0.95
        ]
        assert match, f"fp16 lost the class {class_id} box {xyxy}"
        assert abs(reduced.scores[match[0]] - score) < 0.02
