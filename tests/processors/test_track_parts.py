"""The tracker's array parts against plain references: the per-coordinate Kalman blocks give
bit for bit what ByteTrack's full 8x8 filter gives, and ``overlapping_pairs`` lists exactly the
pairs (same order, same IoU to the bit) that listing every pair and filtering gives."""

from __future__ import annotations

import numpy as np
import pytest

from processors.track import kalman
from processors.track.assign import group_pairs, overlapping_pairs, pair_iou


def _full_predict(means, covs, steps):
    """ByteTrack's predict with the full 8x8 covariance, as the tracker had it before."""
    n = len(means)
    f = np.tile(np.eye(8), (n, 1, 1))
    f[:, np.arange(4), np.arange(4) + 4] = steps[:, None]
    means = (f @ means[:, :, None])[:, :, 0]
    var = means[:, 3:4] * np.r_[[1 / 20] * 2, 0, 1 / 20, [1 / 160] * 2, 0, 1 / 160]
    var[:, [2, 6]] = [1e-2, 1e-5]
    q = np.zeros((n, 8, 8))
    q[:, np.arange(8), np.arange(8)] = var**2 * steps[:, None]
    return means, f @ covs @ f.transpose(0, 2, 1) + q


def _full_update(means, covs, xyah):
    r = means[:, 3:4] * np.array([1 / 20, 1 / 20, 0.0, 1 / 20])
    r[:, 2] = 1e-1
    s = covs[:, :4, :4] + np.eye(4) * (r**2)[:, None, :]
    gain_t = np.linalg.solve(s, covs[:, :4, :])
    means = means + ((xyah - means[:, :4])[:, None, :] @ gain_t)[:, 0, :]
    return means, covs - covs[:, :, :4] @ gain_t


def test_kalman_blocks_follow_the_full_filter():
    rng = np.random.default_rng(7)
    n = 500
    xyxy = rng.uniform(0, 500, (n, 2))
    xyxy = np.concatenate([xyxy, xyxy + rng.uniform(5, 200, (n, 2))], axis=1)
    means, covs = kalman.initiate(kalman.xyxy_to_xyah(xyxy))
    full_means, full = means.copy(), kalman.full_covariance(covs)
    for _ in range(12):
        steps = rng.choice([1.0, 1.0, 2.0, 3.5], n)
        kalman.predict(means, covs, steps)
        full_means, full = _full_predict(full_means, full, steps)
        np.testing.assert_allclose(means, full_means, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(kalman.full_covariance(covs), full, rtol=1e-9, atol=1e-9)
        seen = kalman.xyxy_to_xyah(xyxy + rng.normal(0, 3, xyxy.shape))
        means, covs = kalman.update(means, covs, seen)
        full_means, full = _full_update(full_means, full, seen)
        np.testing.assert_allclose(means, full_means, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(kalman.full_covariance(covs), full, rtol=1e-9, atol=1e-9)
    assert np.all(covs[:, kalman.PP] > 0) and np.all(covs[:, kalman.VV] > 0)


def _boxes(rng, n, spread):
    corner = rng.uniform(0, spread, (n, 2))
    return np.concatenate([corner, corner + rng.uniform(10, 80, (n, 2))], axis=1)


@pytest.mark.parametrize(
    "tracks_per_group, boxes_per_group",
    [
        ([20] * 64, [21] * 64),  # even groups, many pairs: the block by broadcasting
        ([1] * 30 + [200], [2] * 30 + [150]),  # lopsided (many pairs): the listing
        ([0, 5, 3, 0, 7], [4, 0, 6, 2, 7]),  # empty groups on either side
        ([0, 0], [3, 1]),  # no track at all
        ([3] * 4, [4] * 4),  # few pairs: the listing
    ],
)
def test_overlapping_pairs_are_the_listed_pairs_that_overlap(tracks_per_group, boxes_per_group):
    rng = np.random.default_rng(len(tracks_per_group))
    groups = len(tracks_per_group)
    group_a = rng.permutation(np.repeat(np.arange(groups), tracks_per_group))  # rows interleave
    group_b = np.repeat(np.arange(groups), boxes_per_group)  # boxes come grouped
    a = _boxes(rng, len(group_a), 400)
    b = _boxes(rng, len(group_b), 400)
    i, j = group_pairs(group_a, group_b, groups)
    iou = pair_iou(a[i], b[j])
    keep = np.flatnonzero(iou > 0.2)
    got_i, got_j, got_iou = overlapping_pairs(a, group_a, b, group_b, groups, 0.2)
    np.testing.assert_array_equal(got_i, i[keep])
    np.testing.assert_array_equal(got_j, j[keep])
    assert got_iou.tobytes() == iou[keep].tobytes()  # the same bits, not just close
    if sum(tracks_per_group) and sum(boxes_per_group) and groups == 64:
        assert 0 < len(keep) < len(i) / 4  # most listed pairs do not overlap
