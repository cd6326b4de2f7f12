"""Fixed-batch YOLO exports made dynamic: proven by analysis, shape inference and ORT parity."""

import logging
import os
import re

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engines import dynamic_batch
from engines.dynamic_batch import Unproven, check_parity, make_dynamic
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.options import EngineOptions
from processors.letterbox import preprocess_into
from processors.yolo import decode_yolo_batch, detect_head_format
from tests.engines import yolo_exports

EXPORTS = {"v5": yolo_exports.v5, "v8": yolo_exports.v8}


@pytest.fixture(params=sorted(EXPORTS))
def export(request, tmp_path):
    return request.param, EXPORTS[request.param](tmp_path / f"{request.param}.onnx")


def run_single(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate(
        [session.run(None, {name: images[i : i + 1]})[0] for i in range(len(images))]
    )


def test_rewritten_model_has_a_symbolic_batch_and_matches_the_original(export, tmp_path):
    style, path = export
    result = make_dynamic(path, tmp_path / "cache")
    assert result.dynamic and result.rewritten_now and result.reason is None
    assert result.path.parent == tmp_path / "cache" and result.path != path
    model = onnx.load(str(result.path))
    for value in [model.graph.input[0], *model.graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        assert dim.dim_param == "batch" and not dim.HasField("dim_value"), value.name
    # No Reshape target in the rewritten model still starts with the fixed batch 1.
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Reshape" and node.input[1] in inits:
            assert inits[node.input[1]][0] in (-1, 0), node.name
    images = np.random.default_rng(7).random((5, 3, 64, 64), dtype=np.float32)
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (batched,) = session.run(None, {session.get_inputs()[0].name: images})
    want = run_single(path, images)
    assert batched.shape == want.shape == ((5, 240, 8) if style == "v5" else (5, 7, 80))
    np.testing.assert_allclose(batched, want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_engine_batches_a_fixed_export_and_decodes_the_same(export, tmp_path, assets, caplog):
    style, path = export
    options = EngineOptions(backend="onnxruntime", device="cpu", max_batch=4, cache_dir=tmp_path)
    caplog.set_level(logging.INFO, logger="engines")
    engine = OnnxRuntimeEngine(path, options)
    try:
        assert engine.max_batch == 4 and engine.input_spec.shape[0] == -1
        assert "rewrote it for a dynamic batch" in caplog.text
        assert "fixed batch" not in caplog.text
        cap = cv2.VideoCapture(str(assets.videos["bikes.mp4"]))
        frames = []
        for _ in range(4):
            ok, frame = cap.read()
            assert ok
            frames.append(frame)
            for _ in range(20):
                cap.grab()
        cap.release()
        slot = engine.acquire()
        boxes = [preprocess_into(slot.input[i], frame) for i, frame in enumerate(frames)]
        images = slot.input[:4].copy()
        slot.submit(4)
        (output,) = slot.wait()
        output = np.array(output)
        engine.release(slot)
        head = detect_head_format(output.shape, yolo_exports.CLASSES)
        assert head == ("yolov5" if style == "v5" else "yolov8")
        hws = [f.shape[:2] for f in frames]
        together = decode_yolo_batch(output, head, boxes, hws, 0.25, 0.45)
        singles = [engine.infer(images[i : i + 1])[0] for i in range(4)]
        assert sum(len(d.scores) for d in together) > 0
        for i, single in enumerate(singles):
            (alone,) = decode_yolo_batch(single, head, boxes[i : i + 1], hws[i : i + 1], 0.25, 0.45)
            np.testing.assert_array_equal(together[i].class_ids, alone.class_ids)
            np.testing.assert_allclose(together[i].xyxy, alone.xyxy, atol=1e-3)
            np.testing.assert_allclose(together[i].scores, alone.scores, atol=1e-5)
        # ... and one frame at a time through the ORIGINAL fixed-batch model gives them too.
        np.testing.assert_allclose(
            output, run_single(path, images), rtol=0, atol=1e-4 * np.abs(output).max()
        )
    finally:
        engine.close()


def test_the_rewrite_is_cached_and_reused(tmp_path, caplog, monkeypatch):
    path = yolo_exports.v8(tmp_path / "m.onnx")
    options = EngineOptions(
        backend="onnxruntime", device="cpu", max_batch=3, cache_dir=tmp_path / "c"
    )
    OnnxRuntimeEngine(path, options).close()
    (copy,) = (tmp_path / "c").glob("m-*-batch*.onnx")
    mtime = copy.stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(
        dynamic_batch, "rewrite_file", lambda *a: calls.append(a) or pytest.fail("rewritten again")
    )
    caplog.clear()
    caplog.set_level(logging.INFO, logger="engines")
    engine = OnnxRuntimeEngine(path, options)
    try:
        assert engine.max_batch == 3 and not calls
        assert copy.stat().st_mtime_ns == mtime
        assert "using its dynamic-batch copy" in caplog.text
        assert "rewrote" not in caplog.text
    finally:
        engine.close()


@pytest.mark.parametrize(
    "broken, reason",
    [
        (
            "reshape_not_batch",
            r"\(Reshape\): its target \[3, 1, 80\] .* no axis that is provably the batch",
        ),
        ("reduce_batch", r"\(ReduceSum\): it reduces over the batch axis"),
        ("flatten_batch", r"\(Flatten\): it flattens every image into one row"),
    ],
)
def test_unprovable_batch_falls_back_to_one_with_the_reason(tmp_path, caplog, broken, reason):
    path = yolo_exports.v8(tmp_path / "m.onnx", broken=broken)
    options = EngineOptions(
        backend="onnxruntime", device="cpu", max_batch=4, cache_dir=tmp_path / "c"
    )
    caplog.set_level(logging.INFO, logger="engines")
    engine = OnnxRuntimeEngine(path, options)
    try:
        assert engine.max_batch == 1 and engine.input_spec.shape[0] == 1
        warning = next(
            r.getMessage() for r in caplog.records if "cannot be given a dynamic" in r.getMessage()
        )
        assert re.search(reason, warning), warning
        assert "using it instead of max_batch=4" in caplog.text
        assert not list((tmp_path / "c").glob("*.onnx"))
    finally:
        engine.close()
    # The verdict is cached too: the next start does not analyse the model again.
    again = make_dynamic(path, tmp_path / "c")
    assert not again.dynamic and not again.rewritten_now and re.search(reason, again.reason)


def test_parity_error_is_named(tmp_path):
    original = yolo_exports.v8(tmp_path / "a.onnx", seed=1)
    rewritten, _ = dynamic_batch.rewrite_file(yolo_exports.v8(tmp_path / "b.onnx", seed=2))
    with pytest.raises(Unproven, match=r"parity: output '.*' at batch 3 differs from single runs"):
        check_parity(onnx.load(str(original)).SerializeToString(), rewritten)


def test_switched_off_or_batch_one_keeps_the_original(tmp_path):
    path = yolo_exports.v5(tmp_path / "m.onnx")
    for options in (
        EngineOptions(
            backend="onnxruntime", max_batch=4, cache_dir=tmp_path / "c", rewrite_fixed_batch=False
        ),
        EngineOptions(backend="onnxruntime", max_batch=1, cache_dir=tmp_path / "c"),
    ):
        engine = OnnxRuntimeEngine(path, options)
        assert engine.max_batch == 1
        engine.close()
    assert not (tmp_path / "c").exists()


def test_a_dynamic_model_is_not_touched(tmp_path):
    from engines.tensorrt_build import batch_model

    path = yolo_exports.v8(tmp_path / "m.onnx")
    result = make_dynamic(path, tmp_path / "c")
    options = EngineOptions(max_batch=8, cache_dir=tmp_path / "c2")
    assert batch_model(result.path, options) == result.path  # already dynamic
    assert not (tmp_path / "c2").exists()
    assert batch_model(path, options).parent == tmp_path / "c2"  # the TensorRT path rewrites too
    assert dynamic_batch.input_batch(result.path) is None and dynamic_batch.input_batch(path) == 1
    assert os.path.getsize(batch_model(path, options)) > 0


def test_a_missed_batch_constant_is_caught_by_shape_inference(tmp_path, monkeypatch):
    """If the analysis forgot a Reshape constant, strict shape inference still refuses."""
    path = yolo_exports.v8(tmp_path / "m.onnx")
    monkeypatch.setattr(dynamic_batch._Analysis, "run", lambda self: None)  # no rewrites
    with pytest.raises(Unproven, match="shape inference"):
        dynamic_batch.rewrite_file(path)


def test_trained_640_v8_export_batches_and_finds_the_cyclist(tmp_path, assets):
    """benchmarks/yolo640_trained.py: YOLOv3-tiny's weights at 640 behind a v8 head, fixed batch
    1 as exported by default; the int8 accuracy benchmark scores it through this rewrite."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "yolo640_trained.py"
    spec = importlib.util.spec_from_file_location("yolo640_trained", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = module.make(tmp_path / "v8-640.onnx")
    model = onnx.load(str(path))
    dims = [[d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input]
    assert dims == [[1, 3, 640, 640]]
    options = EngineOptions(backend="onnxruntime", device="cpu", max_batch=2, cache_dir=tmp_path)
    engine = OnnxRuntimeEngine(path, options)
    try:
        assert engine.max_batch == 2 and engine.input_spec.shape[0] == -1
        cap = cv2.VideoCapture(str(assets.videos["bikes.mp4"]))
        cap.set(cv2.CAP_PROP_POS_FRAMES, 123)  # the cyclist
        ok, frame = cap.read()
        cap.release()
        assert ok
        batch = np.empty((2, 3, 640, 640), np.float32)
        boxes = [preprocess_into(batch[i], frame) for i in range(2)]
        (output,) = engine.infer(batch)
        assert output.shape == (2, 84, 6000)
        assert detect_head_format(output.shape, 80) == "yolov8"
        found = decode_yolo_batch(output, "yolov8", boxes, [frame.shape[:2]] * 2, 0.25, 0.45)
        assert 0 in found[0].class_ids.tolist() and 1 in found[0].class_ids.tolist()
        np.testing.assert_allclose(found[0].xyxy, found[1].xyxy, atol=1e-3)
    finally:
        engine.close()
