"""Box overlap and thresholded optimal assignment: the two pieces every association stage uses."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

_NO = 1e6  # the cost of a pair that must not match
LISTED_PAIRS = 4096  # up to this many pairs, listing them costs less than laying out blocks


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a (n, 4)`` with every box in ``b (m, 4)`` (xyxy): ``(n, m)``."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the minimum-cost assignment, keeping pairs with cost < ``max_cost``."""
    if not cost.size:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    gated = np.where(cost < max_cost, cost, _NO)
    rows, cols = linear_sum_assignment(gated)
    keep = gated[rows, cols] < max_cost
    return rows[keep], cols[keep]


def pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``a[k]`` with ``b[k]`` for each row of two ``(p, 4)`` xyxy arrays: ``(p,)``."""
    w = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0.0)
    h = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0.0)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def group_pairs(
    group_a: np.ndarray, group_b: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(i, j)`` with ``group_a[i] == group_b[j]``, for all groups at once.

    Returns index arrays into ``a`` and ``b``; the cost is the number of pairs, not the groups.
    The pairs come ordered by group, then by ``a`` (stably), then by ``b``.
    """
    if groups == 1:  # one stream: every pair, in the same order
        n_a, n_b = len(group_a), len(group_b)
        return np.repeat(np.arange(n_a), n_b), np.tile(np.arange(n_b), n_a)
    order_a = np.argsort(group_a, kind="stable")
    order_b = np.argsort(group_b, kind="stable")
    count_b = np.bincount(group_b, minlength=groups)
    start_b = np.concatenate([[0], np.cumsum(count_b)[:-1]])
    per_a = count_b[group_a[order_a]]  # pairs of each a
    total = int(per_a.sum())
    if not total:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    first = np.concatenate([[0], np.cumsum(per_a)[:-1]])
    offset = np.arange(total) - np.repeat(first, per_a)
    i = np.repeat(order_a, per_a)
    j = order_b[np.repeat(start_b[group_a[order_a]], per_a) + offset]
    return i, j


def overlapping_pairs(
    a_xyxy: np.ndarray,
    group_a: np.ndarray,
    b_xyxy: np.ndarray,
    group_b: np.ndarray,
    groups: int,
    more_than: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs ``(i, j)`` of the same group whose IoU is above ``more_than``, and that IoU.

    The same pairs, in the same order (group, then ``a``, then ``b``) and with the same IoU to
    the bit as :func:`group_pairs` followed by :func:`pair_iou` and a filter; but where the
    groups are of similar size and the pairs many it computes on one ``(groups, most a,
    most b)`` block by broadcasting, without listing and gathering every pair first (most of a
    crowded call's pairs overlap not at all). Few pairs, or lopsided groups whose block would
    be mostly padding, take the listing.
    """
    if groups == 1:
        listed = True
    else:
        count_a = np.bincount(group_a, minlength=groups)
        count_b = np.bincount(group_b, minlength=groups)
        pairs = int(count_a @ count_b)
        most_a, most_b = int(count_a.max()), int(count_b.max())
        listed = pairs <= LISTED_PAIRS or groups * most_a * most_b > 2 * pairs
    if listed:
        i, j = group_pairs(group_a, group_b, groups)
        iou = pair_iou(a_xyxy[i], b_xyxy[j])
        keep = np.flatnonzero(iou > more_than)
        return i[keep], j[keep], iou[keep]
    index_a, block_a = _blocks(a_xyxy, group_a, count_a, groups, most_a)
    index_b, block_b = _blocks(b_xyxy, group_b, count_b, groups, most_b)
    a = block_a[:, :, None, :]
    b = block_b[:, None, :, :]
    w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0)
    h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    iou = inter / np.maximum(area_a + area_b - inter, 1e-9)
    real = (index_a >= 0)[:, :, None] & (index_b >= 0)[:, None, :]
    g, ra, rb = np.nonzero((iou > more_than) & real)
    return index_a[g, ra], index_b[g, rb], iou[g, ra, rb]


def _blocks(
    xyxy: np.ndarray, group: np.ndarray, count: np.ndarray, groups: int, most: int
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes laid out by group: ``(groups, most)`` indices into ``xyxy`` (-1: padding, whose
    box is all zeros) and ``(groups, most, 4)`` boxes, each group's in their order."""
    order = np.argsort(group, kind="stable")
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    rank = np.arange(len(group)) - start[group[order]]
    index = np.full((groups, most), -1, np.intp)
    index[group[order], rank] = order
    block = np.zeros((groups, most, 4))
    block[group[order], rank] = xyxy[order]
    return index, block


def match_pairs(
    a: np.ndarray, b: np.ndarray, cost: np.ndarray, group: np.ndarray, max_cost: float
) -> tuple[np.ndarray, np.ndarray]:
    """The minimum-cost assignment of candidate pairs ``(a[k], b[k])``, groups kept apart.

    Pairs at or above ``max_cost`` are out. A pair whose two ends have no other candidate is
    taken at once, for every group in one pass (most pairs, when objects do not crowd);
    ``linear_sum_assignment`` runs only on the groups where candidates compete. Same result
    as one assignment per group: the optimum splits over the pairs' connected parts.
    """
    ok = np.flatnonzero(cost < max_cost)
    if not len(ok):
        return ok, ok
    a, b = a[ok], b[ok]
    alone = (np.bincount(a)[a] == 1) & (np.bincount(b)[b] == 1)
    if alone.all():
        return a, b
    cost, group = cost[ok], group[ok]
    out_a, out_b = [a[alone]], [b[alone]]
    crowded = np.flatnonzero(~alone)
    crowded = crowded[np.argsort(group[crowded], kind="stable")]
    a, b, cost, group = a[crowded], b[crowded], cost[crowded], group[crowded]
    row, col = _rank_in_group(a, group), _rank_in_group(b, group)
    edges = np.flatnonzero(np.diff(group)) + 1
    for k in np.split(np.arange(len(a)), edges):
        matrix = np.full((row[k].max() + 1, col[k].max() + 1), _NO)
        matrix[row[k], col[k]] = cost[k]
        r, c = linear_sum_assignment(matrix)
        keep = matrix[r, c] < max_cost
        pick = np.full(matrix.shape, -1)
        pick[row[k], col[k]] = k
        chosen = pick[r[keep], c[keep]]
        out_a.append(a[chosen])
        out_b.append(b[chosen])
    return np.concatenate(out_a), np.concatenate(out_b)


def _rank_in_group(item: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For each entry, the rank of its item among the distinct items of its group (0, 1, ...);
    an item belongs to one group."""
    unique, inverse = np.unique(item, return_inverse=True)
    item_group = np.empty(len(unique), group.dtype)
    item_group[inverse] = group
    order = np.lexsort((unique, item_group))
    starts = np.searchsorted(item_group[order], item_group[order], side="left")
    rank = np.empty(len(unique), np.int64)
    rank[order] = np.arange(len(unique)) - starts
    return rank[inverse]
