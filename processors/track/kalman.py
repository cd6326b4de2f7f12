"""A constant-velocity Kalman filter on ``(cx, cy, aspect, h)``, batched over many tracks.

ByteTrack's filter (its noise weights, the aspect ratio ``w / h`` as a state), rewritten to run
on arrays: ``means (n, 8)`` for every track of every stream at once, predicting over ``steps``
nominal frames per track, so a gap of dropped frames is one step of the right length instead
of a stop.

The covariance is kept as what it is, four independent 2x2 blocks: each coordinate's position
and velocity are correlated with each other and with nothing else, because the motion ``F``,
the measurement ``H = [I 0]`` and both noises act on each coordinate alone and a track starts
with a diagonal covariance. So ``covs`` is ``(n, 4, 4)``: ``covs[:, PP]`` the position
variances, ``[:, PV]`` and ``[:, VP]`` the two off-diagonal blocks' diagonals (position-velocity
and velocity-position, kept apart as the full 8x8 filter computes them), ``[:, VV]`` the
velocity variances, each over ``(cx, cy, aspect, h)``. Every step is then a dozen whole-array
operations on ``(n, 4)`` with no 8x8 product or 4x4 solve, and gives bit for bit what ByteTrack's
8x8 filter gives (``full_covariance`` rebuilds it; benchmarks/track_equivalence.py compares).
"""

from __future__ import annotations

import numpy as np

POSITION_WEIGHT = 1.0 / 20  # ByteTrack's std_weight_position: noise relative to box height
VELOCITY_WEIGHT = 1.0 / 160  # std_weight_velocity

# The process noise std is ``h * _NOISE_W`` except for the aspect entries, fixed at
# ``_NOISE_ASPECT``: positions first, then velocities.
_NOISE_W = np.array(
    [POSITION_WEIGHT] * 2 + [0.0, POSITION_WEIGHT] + [VELOCITY_WEIGHT] * 2 + [0.0, VELOCITY_WEIGHT]
)
_ASPECT = [2, 6]
_NOISE_ASPECT = np.array([1e-2, 1e-5])
_MEAS_W = np.array([POSITION_WEIGHT, POSITION_WEIGHT, 0.0, POSITION_WEIGHT])
PP, PV, VP, VV = 0, 1, 2, 3  # the blocks of ``covs[:, block, coordinate]``


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
    """New tracks at the measured boxes ``(n, 4)``, at rest: ``(means (n, 8), covs (n, 4, 4))``."""
    n = len(xyah)
    means = np.zeros((n, 8))
    means[:, :4] = xyah
    h = xyah[:, 3]
    pos, vel = 2 * POSITION_WEIGHT * h, 10 * VELOCITY_WEIGHT * h
    covs = np.zeros((n, 4, 4))
    covs[:, PP] = np.stack([pos, pos, np.full(n, 1e-2), pos], axis=1) ** 2
    covs[:, VV] = np.stack([vel, vel, np.full(n, 1e-5), vel], axis=1) ** 2
    return means, covs


def predict(means: np.ndarray, covs: np.ndarray, steps: np.ndarray) -> None:
    """Move every track ``steps (n,)`` nominal frames ahead, in place.

    ``F = [[I, k I], [0, I]]``: ``F P F^T`` per coordinate, and the process noise grows
    linearly with ``k``.
    """
    if not len(means):
        return
    k = steps[:, None]
    means[:, :4] += k * means[:, 4:]
    pp, pv, vp, vv = covs[:, PP], covs[:, PV], covs[:, VP], covs[:, VV]
    pp += k * (pv + vp) + k * k * vv
    pv += k * vv
    vp += k * vv
    var = means[:, 3:4] * _NOISE_W
    var[:, _ASPECT] = _NOISE_ASPECT
    var *= var
    var *= k
    pp += var[:, :4]
    vv += var[:, 4:]


def update(means: np.ndarray, covs: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct tracks ``(n, 8)`` with their matched measurements ``(n, 4)``; new arrays.

    ``S = P_pp + R`` is diagonal, so the gain is a division per coordinate (as a product with
    ``1 / S``, which is what LAPACK's solve of a diagonal system computes).
    """
    if not len(means):
        return means, covs
    r = means[:, 3:4] * _MEAS_W
    r[:, 2] = 1e-1
    r *= r
    pp, pv, vp, vv = covs[:, PP], covs[:, PV], covs[:, VP], covs[:, VV]
    inverse_s = 1.0 / (pp + r)
    gain_p, gain_v = pp * inverse_s, pv * inverse_s  # K = P H^T S^-1, by block
    innovation = xyah - means[:, :4]
    means = np.concatenate(
        [means[:, :4] + innovation * gain_p, means[:, 4:] + innovation * gain_v], axis=1
    )
    covs = np.stack([pp - pp * gain_p, pv - pp * gain_v, vp - vp * gain_p, vv - vp * gain_v], 1)
    return means, covs  # P - K H P, by block


def full_covariance(covs: np.ndarray) -> np.ndarray:
    """The ``(n, 8, 8)`` covariances the blocks stand for (ByteTrack's layout)."""
    full = np.zeros((len(covs), 8, 8))
    c = np.arange(4)
    full[:, c, c] = covs[:, PP]
    full[:, c, c + 4] = covs[:, PV]
    full[:, c + 4, c] = covs[:, VP]
    full[:, c + 4, c + 4] = covs[:, VV]
    return full
