"""Zones (polygons) and lines, validated on construction (the tests on them: state.py).

Coordinates are whatever the caller uses for boxes (source pixels, y down); nothing here
knows the frame size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from processors.errors import ProcessorError


class GeometryError(ProcessorError, ValueError):
    """A zone or line that cannot be used (too few points, self-intersecting, zero length)."""


def _orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> float:
    """Sign of the cross product (q - p) x (r - p): +1, -1 or 0 (collinear)."""
    return float(np.sign((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])))


def _on_segment(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> bool:
    """Whether r, collinear with p-q, lies within the segment's bounding box."""
    return bool(
        min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])
    )


def segments_intersect(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    """Whether segments p1-p2 and q1-q2 share a point (touching and collinear overlap count)."""
    d1, d2 = _orient(q1, q2, p1), _orient(q1, q2, p2)
    d3, d4 = _orient(p1, p2, q1), _orient(p1, p2, q2)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return True
    return (
        (d1 == 0 and _on_segment(q1, q2, p1))
        or (d2 == 0 and _on_segment(q1, q2, p2))
        or (d3 == 0 and _on_segment(p1, p2, q1))
        or (d4 == 0 and _on_segment(p1, p2, q2))
    )


def _as_points(points, what: str, minimum: int) -> np.ndarray:
    try:
        xy = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise GeometryError(f"{what}: points must be [x, y] numbers, got {points!r}") from err
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise GeometryError(f"{what}: points must be a list of [x, y] pairs, got shape {xy.shape}")
    if len(xy) < minimum:
        raise GeometryError(f"{what}: needs at least {minimum} points, got {len(xy)}")
    if not np.isfinite(xy).all():
        raise GeometryError(f"{what}: points must be finite numbers")
    return xy


@dataclass(frozen=True, eq=False)
class Zone:
    """A named simple polygon (vertices in order, closed implicitly), shape ``(n, 2)`` float64.

    A point on its edge is inside (a zone drawn to the frame's edge holds boxes cut by it).
    ``dwell_alert_s``: a track inside for longer than this raises one 'dwell' event per visit
    (None: never). ``class_ids``: the classes it counts (None: every class); others are never
    inside. Raises GeometryError for fewer than 3 points, a repeated consecutive vertex or
    edges that cross each other (a bow-tie): even-odd membership of such a shape surprises
    people; and for a dwell alert time that is not a positive number.
    """

    name: str
    points: np.ndarray
    dwell_alert_s: float | None = None
    class_ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        what = f"zone {self.name!r}"
        if self.dwell_alert_s is not None and not self.dwell_alert_s > 0:
            raise GeometryError(f"{what}: dwell_alert_s must be > 0, got {self.dwell_alert_s}")
        _check_classes(self.class_ids, what)
        xy = _as_points(self.points, what, 3)
        n = len(xy)
        edges = [(xy[i], xy[(i + 1) % n]) for i in range(n)]
        for i, (a, b) in enumerate(edges):
            if np.array_equal(a, b):
                raise GeometryError(f"{what}: point {i} repeats point {(i + 1) % n}")
        for i in range(n):
            for j in range(i + 1, n):
                if j == i + 1 or (i == 0 and j == n - 1):
                    continue  # neighbours share a vertex by construction
                if segments_intersect(*edges[i], *edges[j]):
                    raise GeometryError(
                        f"{what}: self-intersecting (edge {i} crosses edge {j}); "
                        "list the points in order around the area"
                    )
        object.__setattr__(self, "points", xy)


@dataclass(frozen=True, eq=False)
class Line:
    """A named segment from ``a`` to ``b``; its direction names the crossing directions.

    'in' is a crossing onto the side where (b - a) x (p - a) > 0, the left of a->b in y-up
    axes. In image pixels (y down) that is the side on your right as you look from a to b
    on screen; 'out' is the opposite crossing. ``class_ids``: the classes it counts (None:
    every class). Raises GeometryError for a zero-length line.
    """

    name: str
    a: np.ndarray
    b: np.ndarray
    class_ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        what = f"line {self.name!r}"
        _check_classes(self.class_ids, what)
        ab = _as_points([self.a, self.b], what, 2)
        if np.array_equal(ab[0], ab[1]):
            raise GeometryError(f"{what}: a and b are the same point {ab[0].tolist()}")
        object.__setattr__(self, "a", ab[0])
        object.__setattr__(self, "b", ab[1])


def _check_classes(class_ids: tuple[int, ...] | None, what: str) -> None:
    if class_ids is not None and (
        not class_ids
        or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in class_ids)
    ):
        raise GeometryError(
            f"{what}: class_ids must be a non-empty tuple of ids >= 0, got {class_ids!r}"
        )
