"""Box overlap and thresholded optimal assignment: the two pieces every association stage uses."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

_NO = 1e6  # the cost of a pair that must not match


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
