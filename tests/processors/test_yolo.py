import numpy as np
import pytest

from processors.letterbox import Letterbox
from processors.nms import box_iou, nms
from processors.yolo import decode_yolo, detect_head_format

IDENTITY = Letterbox(1.0, 0, 0, (416, 416))


def v5_rows(boxes_cxcywh, objectness, class_scores):
    return np.concatenate(
        [
            np.asarray(boxes_cxcywh, np.float32),
            np.asarray(objectness, np.float32)[:, None],
            np.asarray(class_scores, np.float32),
        ],
        axis=1,
    )


@pytest.mark.parametrize(
    "shape, classes, expected",
    [
        ((1, 2535, 85), 80, "yolov5"),
        ((1, 25200, 85), None, "yolov5"),
        ((1, 84, 8400), 80, "yolov8"),
        ((1, 84, 8400), None, "yolov8"),
        ((1, 6, 8400), 2, "yolov8"),
    ],
)
def test_detect_head_format(shape, classes, expected):
    assert detect_head_format(shape, classes) == expected


def test_detect_head_format_rejects_other_ranks():
    with pytest.raises(ValueError, match="3-D"):
        detect_head_format((1, 1000), 80)


def test_yolov5_scores_are_objectness_times_class():
    rows = v5_rows([[100, 100, 50, 40], [300, 300, 20, 20]], [0.9, 0.2], [[0.1, 0.8], [0.9, 0.1]])
    dets = decode_yolo(rows, "yolov5", IDENTITY, (416, 416), 0.25, 0.45)
    assert len(dets) == 1  # second: 0.2 * 0.9 = 0.18 < 0.25
    assert dets.class_ids.tolist() == [1]
    assert dets.scores[0] == pytest.approx(0.72)
    np.testing.assert_allclose(dets.xyxy[0], [75, 80, 125, 120])


def test_yolov8_layout_is_transposed_without_objectness():
    rows = np.array(
        [
            [100, 300],
            [100, 300],
            [50, 20],
            [40, 20],  # cx, cy, w, h
            [0.1, 0.3],
            [0.6, 0.2],
        ],
        np.float32,
    )  # two classes
    dets = decode_yolo(rows, "yolov8", IDENTITY, (416, 416), 0.25, 0.45)
    assert dets.class_ids.tolist() == [1, 0]
    np.testing.assert_allclose(dets.scores, [0.6, 0.3])
    np.testing.assert_allclose(dets.xyxy[1], [290, 290, 310, 310])


def test_boxes_are_mapped_back_through_the_letterbox():
    box = Letterbox.fit((272, 640), (416, 416))  # scale 0.65, pad_y 119
    cx, cy = 320 * box.scale, 136 * box.scale + box.pad_y
    rows = v5_rows([[cx, cy, 65, 65]], [1.0], [[1.0]])
    dets = decode_yolo(rows, "yolov5", box, (272, 640), 0.5, 0.45)
    np.testing.assert_allclose(dets.xyxy[0], [270, 86, 370, 186], atol=1e-3)


def test_empty_output_gives_empty_detections():
    rows = v5_rows([[1, 1, 1, 1]], [0.01], [[0.5]])
    assert len(decode_yolo(rows, "yolov5", IDENTITY, (416, 416), 0.25, 0.45)) == 0


def test_unknown_format_is_an_error():
    with pytest.raises(ValueError, match="unknown head format"):
        decode_yolo(np.zeros((3, 6), np.float32), "ssd", IDENTITY, (416, 416), 0.25, 0.45)


def test_nms_suppresses_overlaps_within_a_class_only():
    xyxy = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    class_ids = np.array([0, 0, 1, 0])
    assert nms(xyxy, scores, class_ids, 0.5).tolist() == [0, 2, 3]


def test_nms_keeps_best_first_and_respects_max():
    xyxy = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], np.float32)
    scores = np.array([0.5, 0.9, 0.7], np.float32)
    assert nms(xyxy, scores, np.zeros(3, int), 0.5, max_detections=2).tolist() == [1, 2]


def test_nms_of_nothing():
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, int), 0.5).size == 0


def test_box_iou_values():
    ious = box_iou(
        np.array([0, 0, 10, 10.0]),
        np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0.0]]),
    )
    np.testing.assert_allclose(ious, [1.0, 1 / 3, 0.0, 0.0])
