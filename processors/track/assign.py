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
