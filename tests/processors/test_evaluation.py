"""Scoring frames and intervals: no scored frame is a calibration frame; bootstrap bounds.

The accuracy benchmark (benchmarks/int8_accuracy.py) scores int8 on frames of the same videos
it calibrates on; a frame the quantizer saw would flatter it, so these tests decode both sets
from the real sample videos and compare them pixel for pixel.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from processors.calibration import _frames, video_frame_indices, video_quotas
from processors.detections import Detections
from processors.evaluation import _Ranked, eval_frames, eval_indices, map50, map50_interval


def _videos(assets) -> list[str]:
    return [str(assets.videos[name]) for name in ("bikes.mp4", "carphone_pristine.mp4")]


def _digests(frames) -> set[str]:
    return {hashlib.sha256(np.ascontiguousarray(f).tobytes()).hexdigest() for f in frames}


def _calibration_digests(videos: list[str], count: int) -> set[str]:
    return _digests(_frames([], videos, (0, video_quotas(count, len(videos)))))


@pytest.mark.parametrize(("calibration", "count", "expected"), [(64, 40, 40), (256, 200, 122)])
def test_eval_frames_are_never_calibration_frames(assets, calibration, count, expected):
    videos = _videos(assets)
    scored = eval_frames(videos, count, calibration)
    assert len(scored) == expected  # 256 calibration frames leave bikes' last 122 and no more
    seen = _calibration_digests(videos, calibration)
    assert len(seen) == calibration - (8 if calibration == 256 else 0)  # carphone has 120
    assert not _digests(scored) & seen


def test_eval_frames_held_out_video_is_scored_whole(assets):
    bikes, carphone = _videos(assets)
    scored = eval_frames([bikes, carphone], 150, 128, calibration_videos=[bikes])
    # bikes keeps 122 of its 250 frames (128 calibrated at stride 1); carphone was never seen
    assert len(scored) == 150
    assert not _digests(scored) & _calibration_digests([bikes], 128)
    assert len(_digests(scored) & _digests(eval_frames([carphone], 120, 0))) == 75


def test_eval_indices_spread_over_what_calibration_left():
    assert eval_indices(10, 3, {0, 1}) == [2, 6, 9]
    assert eval_indices(5, 10, {1}) == [0, 2, 3, 4]
    assert eval_indices(5, 0) == []
    assert list(video_frame_indices(250, 64)) == list(range(0, 192, 3))
    assert list(video_frame_indices(120, 128)) == list(range(120))


def _dets(boxes, scores, classes) -> Detections:
    return Detections(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(classes, np.int32),
    )


def _frame_pair(k: int, hit: bool) -> tuple[Detections, Detections]:
    ref = _dets([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 0])
    boxes = [[0, 0, 10, 10] if hit else [50, 50, 60, 60], [20, 20, 30, 31], [70, 70, 80, 80]]
    return ref, _dets(boxes, [0.5 + 0.01 * k, 0.6, 0.3 + 0.02 * k], [0, 0, 0])


def test_weighted_mean_ap_is_map50_on_repeated_frames():
    (ra, ca), (rb, cb) = _frame_pair(1, True), _frame_pair(2, False)
    ranked = _Ranked([ra, rb], [ca, cb], 0.5)
    weighted = ranked.mean_ap(np.array([[2.0, 1.0], [0.0, 1.0]]), ranked.classes(1))
    assert weighted[0] == pytest.approx(map50([ra, ra, rb], [ca, ca, cb]))
    assert weighted[1] == pytest.approx(map50([rb], [cb]))
    assert map50([ra, rb], [ca, cb]) != pytest.approx(weighted[0])  # the weights matter


def test_map50_interval_is_certain_only_when_frames_agree():
    pairs = [_frame_pair(k, k % 3 != 0) for k in range(40)]
    refs, cands = [r for r, _ in pairs], [c for _, c in pairs]
    assert map50_interval(refs, refs) == (pytest.approx(1.0), pytest.approx(1.0))
    point = map50(refs, cands)
    low, high = map50_interval(refs, cands, block=4, rounds=400)
    assert low < point < high < 1.0
    assert map50_interval(refs, cands, block=4, rounds=400) == (low, high)  # seeded
    # one rare class seen once and missed: AP 0 or absent, so the interval spans half the scale
    rare = refs[:-1] + [_dets([[0, 0, 10, 10], [40, 40, 50, 50]], [0.9, 0.8], [0, 3])]
    low, high = map50_interval(rare, rare[:-1] + [refs[-1]], block=4, rounds=400)
    assert low <= 0.55 and high == pytest.approx(1.0)
