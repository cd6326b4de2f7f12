import numpy as np
import pytest

import processors.nms as nms_module
from processors.nms import batched_nms, nms


def random_boxes(rng, count, groups):
    xy = rng.uniform(-30, 400, (count, 2))
    wh = rng.uniform(5, 80, (count, 2))
    xyxy = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    return xyxy, rng.random(count).astype(np.float32), rng.integers(0, groups, count)


@pytest.mark.parametrize("seed", range(5))
def test_opencv_and_numpy_paths_keep_the_same_boxes_in_the_same_order(seed, monkeypatch):
    xyxy, scores, groups = random_boxes(np.random.default_rng(seed), 400, 6)
    with_opencv = batched_nms(xyxy, scores, groups, 0.45)
    assert 6 <= len(with_opencv) < 400  # some suppressed, some kept
    monkeypatch.setattr(nms_module, "_NMS_BOXES_BATCHED", None)
    np.testing.assert_array_equal(batched_nms(xyxy, scores, groups, 0.45), with_opencv)
    # And per group, the plain greedy pass of that group alone.
    for group in range(6):
        members = np.flatnonzero(groups == group)
        alone = members[
            nms(
                xyxy[members],
                scores[members],
                np.zeros(len(members), int),
                0.45,
                max_detections=len(members),
            )
        ]
        np.testing.assert_array_equal(with_opencv[groups[with_opencv] == group], alone)


@pytest.mark.parametrize("backend", ["opencv", "numpy"])
def test_groups_never_suppress_each_other_whatever_the_coordinates(backend, monkeypatch):
    if backend == "numpy":
        monkeypatch.setattr(nms_module, "_NMS_BOXES_BATCHED", None)
    # Group 0 at the top of the range, group 1 entirely negative: a naive offset of
    # group * (max + 1) puts both at the same place.
    xyxy = np.array([[390, 390, 400, 400], [-11, -11, -1, -1]], np.float32)
    kept = batched_nms(xyxy, np.array([0.9, 0.8], np.float32), np.array([0, 1]), 0.45)
    assert kept.tolist() == [0, 1]
    assert nms(xyxy, np.array([0.9, 0.8], np.float32), np.array([0, 1]), 0.45).tolist() == [0, 1]


@pytest.mark.parametrize("backend", ["opencv", "numpy"])
def test_iou_semantics(backend, monkeypatch):
    if backend == "numpy":
        monkeypatch.setattr(nms_module, "_NMS_BOXES_BATCHED", None)
    # IoU of these two is exactly 1/3 with float boxes (no +1 pixel): kept at 0.34, not at 0.33.
    xyxy = np.array([[0, 0, 1, 1], [0.5, 0, 1.5, 1]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert batched_nms(xyxy, scores, np.zeros(2, int), 0.34).tolist() == [0, 1]
    assert batched_nms(xyxy, scores, np.zeros(2, int), 0.33).tolist() == [0]
    # Equal scores: input order first.
    far = np.array([[0, 0, 1, 1], [5, 5, 6, 6], [9, 9, 10, 10]], np.float32)
    assert batched_nms(far, np.full(3, 0.5, np.float32), np.zeros(3, int), 0.5).tolist() == [
        0,
        1,
        2,
    ]
    assert (
        batched_nms(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int), 0.5
        ).size
        == 0
    )
