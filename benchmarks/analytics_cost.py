"""What zones and lines cost per stream-frame: processors/analytics' MultiStreamAnalytics with
every stream of a call in one update, beside one object per stream (the tests' reference, the
design it replaced). Synthetic: random walks over a 1920x1080 frame, every object confirmed.

    python benchmarks/analytics_cost.py --streams 1,4,32,128 --objects 20 --frames 200
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processors.analytics import Line, MultiStreamAnalytics, Zone  # noqa: E402
from tests.processors.reference_analytics import ReferenceAnalytics  # noqa: E402

W, H = 1920, 1080
# Two zones (one for persons only, with a dwell alert) and a line, as a site might draw them.
ZONES = [
    Zone("left", [[0, 0], [W / 2, 0], [W / 2, H], [0, H]], dwell_alert_s=5.0),
    Zone("door", [[800, 300], [1400, 300], [1400, 1000], [800, 1000]], class_ids=(0,)),
]
LINES = [Line("middle", [W / 2, 0], [W / 2, H])]


def walks(streams: int, objects: int, frames: int, seed: int = 0) -> np.ndarray:
    """``(frames, streams, objects, 4)`` boxes wandering at about 10 px a frame."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform([0, 0], [W - 60, H - 120], (1, streams, objects, 2))
    xy = np.clip(xy + np.cumsum(rng.normal(0, 10, (frames, streams, objects, 2)), 0), 0, None)
    xy = np.minimum(xy, [W - 60, H - 120])
    return np.concatenate([xy, xy + [60, 120]], axis=-1)


def measure(streams: int, objects: int, frames: int) -> tuple[float, float, int]:
    """Median ms per stream-frame: all streams in one call, and one object per stream."""
    boxes = walks(streams, objects, frames)
    ids = np.arange(1, objects + 1)
    classes = ids % 3
    multi = MultiStreamAnalytics()
    names = [f"cam{k}" for k in range(streams)]
    for name in names:
        multi.set_stream(name, ZONES, LINES, forget_after_s=1.0)
    alone = [ReferenceAnalytics(ZONES, LINES, forget_after_s=1.0) for _ in names]
    together_ms, apart_ms, events = [], [], 0
    for f in range(frames):
        pts = f / 30
        began = time.perf_counter()
        out = multi.update(
            names, [pts] * streams, [ids] * streams, list(boxes[f]), [classes] * streams
        )
        together_ms.append((time.perf_counter() - began) * 1000 / streams)
        events += sum(map(len, out))
        began = time.perf_counter()
        for k in range(streams):
            alone[k].update(pts, ids, boxes[f, k], classes)
        apart_ms.append((time.perf_counter() - began) * 1000 / streams)
    return float(np.median(together_ms)), float(np.median(apart_ms)), events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="1,4,32,128")
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    print("streams per call | ms per stream-frame, one call | one object per stream | events")
    for streams in (int(s) for s in args.streams.split(",")):
        together, apart, events = measure(streams, args.objects, args.frames)
        print(f"{streams:16d} | {together:29.4f} | {apart:21.4f} | {events}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
