"""decode_yolo_batch against the per-frame decoder it replaced, on real YOLOv3-tiny outputs.

The reference below is the per-frame implementation as it was before the batch decoder
(NumPy objectness filter, argmax, greedy NMS with the class-offset trick, Letterbox.to_source),
kept here verbatim so that the batch version is checked against it and not against itself.
"""

import cv2
import numpy as np
import pytest

import processors.nms as nms_module
import processors.yolo as yolo_module
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.options import EngineOptions
from processors.detections import Detections
from processors.letterbox import Letterbox, preprocess_into
from processors.nms import box_iou
from processors.yolo import decode_yolo, decode_yolo_batch

# Bikes (640x272, letterboxed top/bottom) and carphone (176x144, left/right) interleaved, so
# that neighbouring images of the batch have different letterboxes and sizes.
FRAMES = [
    ("bikes.mp4", 0),
    ("carphone_pristine.mp4", 0),
    ("bikes.mp4", 60),
    ("carphone_pristine.mp4", 30),
    ("bikes.mp4", 123),
    ("carphone_pristine.mp4", 60),
    ("bikes.mp4", 200),
    ("carphone_pristine.mp4", 90),
]


# --- the previous per-frame implementation (reference; box_iou is unchanged) ----------------------


def ref_nms(xyxy, scores, class_ids, iou_threshold, max_detections=300):
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    offset = float(np.abs(xyxy).max()) + 1.0
    shifted = xyxy + (class_ids.astype(np.float32) * offset)[:, None]
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size and len(keep) < max_detections:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        order = rest[box_iou(shifted[best], shifted[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def ref_decode(
    output,
    head_format,
    letterbox,
    source_hw,
    conf_threshold,
    iou_threshold,
    max_detections=100,
    max_candidates=3000,
):
    if head_format == "yolov8":
        rows = output.T
        class_scores = rows[:, 4:]
        objectness = None
    else:
        rows = output
        objectness = rows[:, 4]
        class_scores = rows[:, 5:]
    if objectness is not None:
        candidates = np.flatnonzero(objectness >= conf_threshold)
        class_scores = class_scores[candidates] * objectness[candidates, None]
    else:
        candidates = np.arange(len(rows))
    if candidates.size == 0:
        return Detections.empty()
    class_ids = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(class_ids)), class_ids]
    passed = scores >= conf_threshold
    candidates, class_ids, scores = candidates[passed], class_ids[passed], scores[passed]
    if candidates.size == 0:
        return Detections.empty()
    if candidates.size > max_candidates:
        top = np.argpartition(-scores, max_candidates)[:max_candidates]
        candidates, class_ids, scores = candidates[top], class_ids[top], scores[top]
    cxcywh = rows[candidates, :4].astype(np.float32)
    xyxy = np.empty_like(cxcywh)
    xyxy[:, :2] = cxcywh[:, :2] - cxcywh[:, 2:] / 2
    xyxy[:, 2:] = cxcywh[:, :2] + cxcywh[:, 2:] / 2
    keep = ref_nms(xyxy, scores, class_ids, iou_threshold, max_detections)
    return Detections(
        letterbox.to_source(xyxy[keep], source_hw),
        scores[keep].astype(np.float32),
        class_ids[keep].astype(np.int32),
    )


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_batch(assets):
    """Raw ``(8, 2535, 85)`` YOLOv3-tiny outputs of 8 real frames, their letterboxes and sizes."""
    images = []
    for name, index in FRAMES:
        cap = cv2.VideoCapture(str(assets.videos[name]))
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = cap.read()
        cap.release()
        assert ok, (name, index)
        images.append(image)
    engine = OnnxRuntimeEngine(
        assets.model_onnx, EngineOptions(backend="onnxruntime", max_batch=len(images))
    )
    try:
        slot = engine.acquire()
        boxes = [preprocess_into(slot.input[i], image) for i, image in enumerate(images)]
        slot.submit(len(images))
        (output,) = slot.wait()
        output = np.array(output)
        engine.release(slot)
    finally:
        engine.close()
    assert output.shape == (8, 2535, 85)
    return output, boxes, [image.shape[:2] for image in images]


def as_yolov8(output_v5: np.ndarray) -> np.ndarray:
    """The same predictions in the yolov8 layout: ``(N, 4 + C, boxes)``, scores = obj * cls."""
    rows = np.concatenate([output_v5[..., :4], output_v5[..., 5:] * output_v5[..., 4:5]], axis=2)
    return np.ascontiguousarray(rows.transpose(0, 2, 1))


def assert_same(got: Detections, want: Detections, where=""):
    assert got.xyxy.dtype == np.float32 and got.scores.dtype == np.float32, where
    assert got.class_ids.dtype == np.int32, where
    np.testing.assert_array_equal(got.class_ids, want.class_ids, err_msg=where)
    np.testing.assert_allclose(got.xyxy, want.xyxy, atol=1e-3, rtol=0, err_msg=where)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-6, rtol=0, err_msg=where)


def v5_image(boxes_cxcywh, scores, class_ids, num_classes=3, num_boxes=8):
    """One synthetic yolov5 image: the given boxes with objectness 1, the rest empty."""
    rows = np.zeros((num_boxes, 5 + num_classes), np.float32)
    for i, (box, score, class_id) in enumerate(zip(boxes_cxcywh, scores, class_ids)):
        rows[i, :4] = box
        rows[i, 4] = 1.0
        rows[i, 5 + class_id] = score
    return rows


IDENTITY = Letterbox(1.0, 0, 0, (416, 416))


# --- real outputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("conf", [0.05, 0.25, 0.5])
def test_yolov5_batch_matches_the_per_frame_decoder(real_batch, conf):
    output, boxes, hws = real_batch
    got = decode_yolo_batch(output, "yolov5", boxes, hws, conf, 0.45, 100)
    assert len(got) == len(FRAMES)
    for i in range(len(FRAMES)):
        assert_same(
            got[i], ref_decode(output[i], "yolov5", boxes[i], hws[i], conf, 0.45), f"frame {i}"
        )
    if conf == 0.25:  # the data is not trivial: both videos give detections, a person included
        counts = [len(d) for d in got]
        assert sum(counts) >= 8 and sum(c > 0 for c in counts) >= 5, counts
        assert 0 in got[4].class_ids.tolist()  # bikes frame 123: the cyclist
        assert any(len(got[i]) for i in (1, 3, 5, 7))  # carphone
    if conf == 0.05:  # NMS had real work: many candidates, few kept
        assert sum(len(d) for d in got) >= 30


def test_yolov8_layout_matches_the_per_frame_decoder(real_batch):
    output, boxes, hws = real_batch
    output_v8 = as_yolov8(output)
    got = decode_yolo_batch(output_v8, "yolov8", boxes, hws, 0.1, 0.45, 100)
    same_as_v5 = decode_yolo_batch(output, "yolov5", boxes, hws, 0.1, 0.45, 100)
    assert sum(len(d) for d in got) >= 10
    for i in range(len(FRAMES)):
        assert_same(
            got[i], ref_decode(output_v8[i], "yolov8", boxes[i], hws[i], 0.1, 0.45), f"frame {i}"
        )
        assert_same(got[i], same_as_v5[i], f"frame {i} v5")


def test_float16_outputs_decode_like_their_float32_values(real_batch):
    output, boxes, hws = real_batch
    half = output.astype(np.float16)
    got = decode_yolo_batch(half, "yolov5", boxes, hws, 0.1, 0.45, 100)
    assert sum(len(d) for d in got) >= 10
    for i in range(len(FRAMES)):
        assert_same(
            got[i],
            ref_decode(half[i].astype(np.float32), "yolov5", boxes[i], hws[i], 0.1, 0.45),
            f"frame {i}",
        )
    got_v8 = decode_yolo_batch(
        as_yolov8(output).astype(np.float16), "yolov8", boxes, hws, 0.1, 0.45, 100
    )
    assert [len(d) for d in got_v8] == [len(d) for d in got]


def test_fewer_frames_than_buffer_rows(real_batch):
    output, boxes, hws = real_batch
    # An engine buffer of 12 rows, 5 of them this batch's: what is after must not leak in.
    buffer = np.zeros((12,) + output.shape[1:], np.float32)
    buffer[:5] = output[:5]
    buffer[5:, :, :4] = (200, 200, 50, 50)
    buffer[5:, :, 4:] = 1.0
    got = decode_yolo_batch(buffer, "yolov5", boxes[:5], hws[:5], 0.25, 0.45, 100)
    assert len(got) == 5
    for i in range(5):
        assert_same(got[i], ref_decode(output[i], "yolov5", boxes[i], hws[i], 0.25, 0.45))
    got_v8 = decode_yolo_batch(as_yolov8(buffer), "yolov8", boxes[:3], hws[:3], 0.25, 0.45)
    assert len(got_v8) == 3
    for i in range(3):
        assert_same(got_v8[i], ref_decode(output[i], "yolov5", boxes[i], hws[i], 0.25, 0.45))


def test_results_do_not_alias_the_output_buffer(real_batch):
    output, boxes, hws = real_batch
    buffer = output.copy()
    got = decode_yolo_batch(buffer, "yolov5", boxes, hws, 0.25, 0.45, 100)
    before = [(d.xyxy.copy(), d.scores.copy(), d.class_ids.copy()) for d in got]
    buffer[:] = 0  # the slot is reused by the next batch
    for d, (xyxy, scores, class_ids) in zip(got, before):
        np.testing.assert_array_equal(d.xyxy, xyxy)
        np.testing.assert_array_equal(d.scores, scores)
        np.testing.assert_array_equal(d.class_ids, class_ids)


def test_max_detections_caps_each_image(real_batch):
    output, boxes, hws = real_batch
    full = decode_yolo_batch(output, "yolov5", boxes, hws, 0.05, 0.45, 100)
    capped = decode_yolo_batch(output, "yolov5", boxes, hws, 0.05, 0.45, 2)
    assert max(len(d) for d in full) > 2
    for i in range(len(FRAMES)):
        assert len(capped[i]) == min(2, len(full[i]))
        assert_same(capped[i], ref_decode(output[i], "yolov5", boxes[i], hws[i], 0.05, 0.45, 2))
        np.testing.assert_array_equal(capped[i].xyxy, full[i].xyxy[:2])  # the best two


def test_candidate_cap_per_image(real_batch, monkeypatch):
    output, boxes, hws = real_batch
    monkeypatch.setattr(yolo_module, "MAX_CANDIDATES", 6)
    got = decode_yolo_batch(output, "yolov5", boxes, hws, 0.05, 0.45, 100)
    for i in range(len(FRAMES)):
        assert_same(
            got[i],
            ref_decode(output[i], "yolov5", boxes[i], hws[i], 0.05, 0.45, max_candidates=6),
            f"frame {i}",
        )


def test_nms_split_into_several_calls_gives_the_same(real_batch, monkeypatch):
    output, boxes, hws = real_batch
    whole = decode_yolo_batch(output, "yolov5", boxes, hws, 0.05, 0.45, 100)
    calls = []
    real_batched_nms = yolo_module.batched_nms

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return real_batched_nms(*args, **kwargs)

    monkeypatch.setattr(yolo_module, "batched_nms", counting)
    monkeypatch.setattr(yolo_module, "NMS_CHUNK", 20)
    split = decode_yolo_batch(output, "yolov5", boxes, hws, 0.05, 0.45, 100)
    assert len(calls) > 2
    for got, want in zip(split, whole):
        assert_same(got, want)


def test_numpy_fallback_gives_the_same(real_batch, monkeypatch):
    output, boxes, hws = real_batch
    with_opencv = decode_yolo_batch(output, "yolov5", boxes, hws, 0.05, 0.45, 100)
    monkeypatch.setattr(nms_module, "_NMS_BOXES_BATCHED", None)
    without = decode_yolo_batch(output, "yolov5", boxes, hws, 0.05, 0.45, 100)
    for got, want in zip(without, with_opencv):
        assert_same(got, want)


def test_single_image_decoder_is_the_batch_of_one(real_batch):
    output, boxes, hws = real_batch
    batch = decode_yolo_batch(output, "yolov5", boxes, hws, 0.25, 0.45, 100)
    for i in range(len(FRAMES)):
        assert_same(decode_yolo(output[i], "yolov5", boxes[i], hws[i], 0.25, 0.45), batch[i])


# --- edge cases -----------------------------------------------------------------------------------


def test_empty_batch(real_batch):
    output, _, _ = real_batch
    assert decode_yolo_batch(output, "yolov5", [], [], 0.25, 0.45) == []
    assert (
        decode_yolo_batch(np.zeros((0, 2535, 85), np.float32), "yolov5", [], [], 0.25, 0.45) == []
    )


@pytest.mark.parametrize("head", ["yolov5", "yolov8"])
def test_everything_below_threshold(real_batch, head):
    output, boxes, hws = real_batch
    data = output if head == "yolov5" else as_yolov8(output)
    got = decode_yolo_batch(data, head, boxes, hws, 0.999, 0.45)
    assert len(got) == len(FRAMES)
    for d in got:
        assert len(d) == 0
        assert d.xyxy.shape == (0, 4) and d.xyxy.dtype == np.float32
        assert d.scores.dtype == np.float32 and d.class_ids.dtype == np.int32


def test_objectness_passes_but_class_score_does_not():
    image = v5_image([[100, 100, 20, 20]], [0.2], [1])  # 1.0 * 0.2 < 0.25
    got = decode_yolo_batch(image[None], "yolov5", [IDENTITY], [(416, 416)], 0.25, 0.45)
    assert len(got) == 1 and len(got[0]) == 0


def test_identical_boxes_in_different_images_both_survive():
    image = v5_image([[100, 100, 40, 40]], [0.9], [2])
    batch = np.stack([image, image])
    got = decode_yolo_batch(batch, "yolov5", [IDENTITY, IDENTITY], [(416, 416)] * 2, 0.25, 0.45)
    assert [len(d) for d in got] == [1, 1]
    for d in got:
        np.testing.assert_allclose(d.xyxy, [[80, 80, 120, 120]])
        assert d.class_ids.tolist() == [2]


@pytest.mark.parametrize("backend", ["opencv", "numpy"])
def test_neighbouring_groups_never_merge_even_with_negative_coordinates(backend, monkeypatch):
    """Image 0's last class and image 1's first class are consecutive NMS groups: a box of
    one at the top of the coordinate range and a box of the other at negative coordinates
    must not meet after the per-group offset."""
    num_classes = 3
    first = v5_image([[395, 395, 10, 10]], [0.9], [num_classes - 1], num_classes)
    second = v5_image([[-6, -6, 10, 10]], [0.8], [0], num_classes)
    # OpenCV's own offset (group * (max coordinate + 1)) does merge these two:
    naive = cv2.dnn.NMSBoxesBatched(
        [[390.0, 390, 10, 10], [-11.0, -11, 10, 10]],
        np.array([0.9, 0.8], np.float32),
        np.array([num_classes - 1, num_classes], np.int32),
        -1.0,
        0.45,
    )
    assert len(naive) == 1
    if backend == "numpy":
        monkeypatch.setattr(nms_module, "_NMS_BOXES_BATCHED", None)
    got = decode_yolo_batch(
        np.stack([first, second]), "yolov5", [IDENTITY] * 2, [(416, 416)] * 2, 0.25, 0.45
    )
    assert [len(d) for d in got] == [1, 1]


def test_max_detections_is_per_image_and_best_first():
    # Image 0: five disjoint boxes; image 1: two. Scores out of order.
    centres = [[20 + 50 * k, 20, 30, 30] for k in range(5)]
    first = v5_image(centres, [0.5, 0.9, 0.3, 0.8, 0.7], [0] * 5)
    second = v5_image(centres[:2], [0.4, 0.6], [1, 1])
    got = decode_yolo_batch(
        np.stack([first, second]),
        "yolov5",
        [IDENTITY] * 2,
        [(416, 416)] * 2,
        0.25,
        0.45,
        max_detections=3,
    )
    np.testing.assert_allclose(got[0].scores, [0.9, 0.8, 0.7])
    np.testing.assert_allclose(got[0].xyxy[:, 0], [55, 155, 205])
    np.testing.assert_allclose(got[1].scores, [0.6, 0.4])
    assert got[1].class_ids.tolist() == [1, 1]


def test_overlapping_boxes_of_one_image_and_class_are_suppressed():
    image = v5_image(
        [[100, 100, 40, 40], [102, 102, 40, 40], [102, 102, 40, 40]], [0.9, 0.8, 0.7], [0, 0, 1]
    )
    got = decode_yolo_batch(image[None], "yolov5", [IDENTITY], [(416, 416)], 0.25, 0.45)
    assert got[0].class_ids.tolist() == [0, 1]
    np.testing.assert_allclose(got[0].scores, [0.9, 0.7])


def test_each_frame_uses_its_own_letterbox_and_clip():
    wide = Letterbox.fit((272, 640), (416, 416))
    small = Letterbox.fit((144, 176), (416, 416))
    # The same model-pixel box, and one running off the bottom-right of the image.
    image = v5_image([[208, 208, 65, 65], [410, 410, 40, 40]], [0.9, 0.8], [0, 1])
    got = decode_yolo_batch(
        np.stack([image, image]), "yolov5", [wide, small], [(272, 640), (144, 176)], 0.25, 0.45
    )
    for d, box, hw in zip(got, (wide, small), ((272, 640), (144, 176))):
        want = box.to_source(
            np.array([[175.5, 175.5, 240.5, 240.5], [390, 390, 430, 430]], np.float32), hw
        )
        np.testing.assert_array_equal(d.xyxy, want)
        assert d.xyxy[:, 2].max() <= hw[1] and d.xyxy[:, 3].max() <= hw[0]


def test_bad_arguments():
    image = v5_image([[100, 100, 40, 40]], [0.9], [0])[None]
    with pytest.raises(ValueError, match="unknown head format"):
        decode_yolo_batch(image, "ssd", [IDENTITY], [(416, 416)], 0.25, 0.45)
    with pytest.raises(ValueError, match="source sizes"):
        decode_yolo_batch(image, "yolov5", [IDENTITY], [], 0.25, 0.45)
    with pytest.raises(ValueError, match="N >= 2"):
        decode_yolo_batch(image, "yolov5", [IDENTITY] * 2, [(416, 416)] * 2, 0.25, 0.45)


def test_multi_label_gives_every_class_past_the_threshold():
    """A box scoring 0.6 as class 0 and 0.3 as class 2: one detection as the pipeline decodes,
    two for mAP as YOLO's val ranks them, same box, best first."""
    image = v5_image([[100, 100, 40, 40]], [0.6], [0])
    image[0, 5 + 2] = 0.3
    args = ([IDENTITY], [(416, 416)], 0.25, 0.45)
    (top1,) = decode_yolo_batch(image[None], "yolov5", *args)
    (multi,) = decode_yolo_batch(image[None], "yolov5", *args, multi_label=True)
    assert top1.class_ids.tolist() == [0]
    assert multi.class_ids.tolist() == [0, 2]
    np.testing.assert_allclose(multi.scores, [0.6, 0.3])
    np.testing.assert_allclose(multi.xyxy, [[80, 80, 120, 120]] * 2)


@pytest.mark.parametrize("head", ["yolov5", "yolov8"])
def test_multi_label_keeps_every_top1_detection_on_real_outputs(real_batch, head):
    output, boxes, hws = real_batch
    data = output if head == "yolov5" else as_yolov8(output)
    top1 = decode_yolo_batch(data, head, boxes, hws, 0.05, 0.45, 300)
    multi = decode_yolo_batch(data, head, boxes, hws, 0.05, 0.45, 300, multi_label=True)
    assert sum(map(len, multi)) > sum(map(len, top1))  # second classes of real boxes
    for i, (one, many) in enumerate(zip(top1, multi)):
        # Per class NMS sees the same best-class candidates plus others, which never suppress
        # across classes: each top-1 box of class c is there again unless a second-class
        # candidate of class c outscores and overlaps it.
        for box, score, class_id in zip(one.xyxy, one.scores, one.class_ids):
            same = many.class_ids == class_id
            best = box_iou(box, many.xyxy[same]).max()
            assert best > 0.45 and many.scores[same].max() >= score - 1e-6, f"frame {i}"
