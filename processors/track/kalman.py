"""A constant-velocity Kalman filter on ``(cx, cy, aspect, h)``, batched over many tracks.

ByteTrack's filter (its noise weights, the aspect ratio ``w / h`` as a state), rewritten to run
on arrays: ``means (n, 8)`` and ``covs (n, 8, 8)`` for every track of every stream at once, and
predicting over ``steps`` nominal frames per track, so a gap of dropped frames is one step of
the right length instead of a stop.
"""

from __future__ import annotations

import numpy as np

POSITION_WEIGHT = 1.0 / 20  # ByteTrack's std_weight_position: noise relative to box height
VELOCITY_WEIGHT = 1.0 / 160  # std_weight_velocity

# Per-call constants, so each step is a few whole-array operations: the process noise std is
# ``h * _NOISE_W`` except for the aspect entries, fixed at ``_NOISE_ASPECT``.
_NOISE_W = np.array(
    [POSITION_WEIGHT] * 2 + [0.0, POSITION_WEIGHT] + [VELOCITY_WEIGHT] * 2 + [0.0, VELOCITY_WEIGHT]
)
_ASPECT = [2, 6]
_DIAG = np.arange(8)
_NOISE_ASPECT = np.array([1e-2, 1e-5])
_MEAS_W = np.array([POSITION_WEIGHT, POSITION_WEIGHT, 0.0, POSITION_WEIGHT])


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """``(n, 4)`` corners to ``(n, 4)`` centre x, centre y, aspect (w / h), height."""
    w = xyxy[:, 2] - xyxy[:, 0]
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1e-6)
    return np.stack([xyxy[:, 0] + w / 2, xyxy[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """The inverse of :func:`xyxy_to_xyah`."""
    w = xyah[:, 2] * xyah[:, 3]
    half = np.stack([w / 2, xyah[:, 3] / 2], axis=1)
    return np.concatenate([xyah[:, :2] - half, xyah[:, :2] + half], axis=1)


def initiate(xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks at the measured boxes ``(n, 4)``, at rest: ``(means (n, 8), covs (n, 8, 8))``."""
    n = len(xyah)
    means = np.zeros((n, 8))
    means[:, :4] = xyah
    h = xyah[:, 3]
    pos, vel = 2 * POSITION_WEIGHT * h, 10 * VELOCITY_WEIGHT * h
    std = np.stack([pos, pos, np.full(n, 1e-2), pos, vel, vel, np.full(n, 1e-5), vel], axis=1)
    covs = np.zeros((n, 8, 8))
    covs[:, np.arange(8), np.arange(8)] = std**2
    return means, covs


def predict(means: np.ndarray, covs: np.ndarray, steps: np.ndarray) -> None:
    """Move every track ``steps (n,)`` nominal frames ahead, in place.

    ``F = [[I, k I], [0, I]]``, so ``F P F^T`` is written out by blocks (no 8x8 products), and
    the process noise grows linearly with ``k``.
    """
    if not len(means):
        return
    k = steps[:, None]
    means[:, :4] += k * means[:, 4:]
    k3 = steps[:, None, None]
    p11, p12 = covs[:, :4, :4], covs[:, :4, 4:]
    p21, p22 = covs[:, 4:, :4], covs[:, 4:, 4:]
    p11 += k3 * (p12 + p21) + k3 * k3 * p22
    p12 += k3 * p22
    p21 += k3 * p22
    var = means[:, 3:4] * _NOISE_W
    var[:, _ASPECT] = _NOISE_ASPECT
    var *= var
    var *= k
    if covs.flags.c_contiguous:
        covs.reshape(len(covs), 64)[:, ::9] += var  # the diagonal, as a view
    else:
        covs[:, _DIAG, _DIAG] += var


def update(means: np.ndarray, covs: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct tracks ``(n, 8)`` with their matched measurements ``(n, 4)``; new arrays."""
    if not len(means):
        return means, covs
    r = means[:, 3:4] * _MEAS_W
    r[:, 2] = 1e-1
    r *= r
    s = covs[:, :4, :4].copy()
    s.reshape(len(s), 16)[:, ::5] += r
    # K = P H^T S^-1; S is symmetric, so K^T = S^-1 H P.
    gain_t = np.linalg.solve(s, covs[:, :4, :])  # (n, 4, 8)
    innovation = xyah - means[:, :4]
    means = means + (innovation[:, None, :] @ gain_t)[:, 0, :]
    covs = covs - covs[:, :, :4] @ gain_t  # P - K S K^T, with K S = P H^T
    return means, covs
