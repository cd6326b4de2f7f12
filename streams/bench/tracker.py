"""``streams evaluate-tracker``: our tracker on MOTChallenge files, scored with motmetrics.

The detections file's ids are ignored: its boxes (and scores, 1.0 where the file has -1, as
tracker outputs do) go through :class:`processors.track.MultiStreamTracker` frame by frame,
optionally as ``--streams N`` copies in one call (the ids of copy 0 are scored), and the
resulting tracks are compared with the ground truth (IoU >= 0.5, motmetrics' MOTChallenge
setup). ``--compare trackers`` runs Roboflow's ``trackers`` ByteTrack and SORT on the same
detections, side by side: an oracle for the benchmark, never a dependency of the pipeline.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streams.errors import StreamsError

METRICS = ["mota", "idf1", "num_switches", "mostly_tracked", "precision", "recall"]
HEADERS = ["MOTA", "IDF1", "ID sw", "MT", "precision", "recall"]


@dataclass(frozen=True)
class Frames:
    """A MOTChallenge file as per-frame arrays: ``{frame: (xyxy (n, 4), scores (n,))}``."""

    by_frame: dict[int, tuple[np.ndarray, np.ndarray]]
    ids: dict[int, np.ndarray]  # the file's own ids per frame (used for the ground truth only)


def read_mot(path: Path, argument: str, ground_truth: bool = False) -> Frames:
    """Rows ``frame, id, x, y, w, h, score, ...`` into frames of corner boxes.

    In a ground truth file the 7th column is a flag: 0 marks a box to ignore (MOT16 on).
    """
    try:
        table = np.loadtxt(path, delimiter=",", ndmin=2)
    except OSError as err:
        raise StreamsError(f"{argument}: cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise StreamsError(f"{argument}: {path} is not a MOTChallenge file: {err}") from None
    if table.size and table.shape[1] < 7:
        raise StreamsError(
            f"{argument}: {path}: expected rows frame,id,x,y,w,h,score,..., got "
            f"{table.shape[1]} columns"
        )
    by_frame: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    ids: dict[int, np.ndarray] = {}
    if not table.size:
        return Frames(by_frame, ids)
    if ground_truth:
        table = table[table[:, 6] != 0]
    frames = table[:, 0].astype(int)
    for frame in np.unique(frames):
        rows = table[frames == frame]
        xyxy = np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1)
        scores = np.where(rows[:, 6] < 0, 1.0, rows[:, 6])
        by_frame[int(frame)] = (xyxy, scores)
        ids[int(frame)] = rows[:, 1].astype(int)
    return Frames(by_frame, ids)


def run_ours(
    det: Frames, fps: float, streams: int, tile: int = 1
) -> tuple[list[tuple], list[float]]:
    """Hypothesis rows ``(frame, id, x, y, w, h)`` of copy 0, and each update's seconds."""
    from processors.track import MultiStreamTracker

    tracker = MultiStreamTracker()
    names = [f"copy{i}" for i in range(streams)]
    rows: list[tuple] = []
    times: list[float] = []
    last = max(det.by_frame, default=0)
    width = _width(det)
    for frame in range(1, last + 1):
        xyxy, scores = det.by_frame.get(frame, (np.zeros((0, 4)), np.zeros(0)))
        tiled = np.concatenate([xyxy + [k * width, 0, k * width, 0] for k in range(tile)])
        tiled_scores = np.tile(scores, tile)
        classes = np.zeros(len(tiled_scores), np.int64)
        n = streams
        start = time.perf_counter()
        ids = tracker.update(
            names, [frame / fps] * n, [tiled] * n, [tiled_scores] * n, [classes] * n
        )
        times.append(time.perf_counter() - start)
        rows += _rows(frame, ids[0][: len(xyxy)], xyxy)
    return rows, times


def run_trackers(
    det: Frames, fps: float, kind: str, tile: int = 1
) -> tuple[list[tuple], list[float]]:
    """The same with Roboflow's ``trackers`` (``kind``: ``bytetrack`` or ``sort``)."""
    try:
        import supervision as sv
        from trackers import ByteTrackTracker, SORTTracker
    except ImportError:
        raise StreamsError(
            "--compare trackers: the trackers package is not installed (pip install trackers, "
            "in a separate environment: it brings opencv-python)"
        ) from None
    tracker = ByteTrackTracker(frame_rate=fps) if kind == "bytetrack" else SORTTracker()
    rows: list[tuple] = []
    times: list[float] = []
    width = _width(det)
    for frame in range(1, max(det.by_frame, default=0) + 1):
        xyxy, scores = det.by_frame.get(frame, (np.zeros((0, 4)), np.zeros(0)))
        if tile > 1:  # cost only: the other copies lie right of the frame, scored as misses
            xyxy = np.concatenate([xyxy + [k * width, 0, k * width, 0] for k in range(tile)])
            scores = np.tile(scores, tile)
        dets = sv.Detections(
            xyxy=xyxy.astype(np.float32),
            confidence=scores.astype(np.float32),
            class_id=np.zeros(len(scores), int),
        )
        start = time.perf_counter()
        out = tracker.update(dets)
        times.append(time.perf_counter() - start)
        ids = np.asarray(out.tracker_id if out.tracker_id is not None else [], np.int64)
        boxes = np.asarray(out.xyxy, np.float64).reshape(-1, 4)
        first = boxes[:, 0] < width  # the first copy, when tiled
        rows += _rows(frame, ids[first], boxes[first])
    return rows, times


def _width(det: Frames) -> float:
    """Right of every box in the file: where a tiled copy starts."""
    return 1 + max((float(x[:, 2].max()) for x, _ in det.by_frame.values() if len(x)), default=0)


def _rows(frame: int, ids: np.ndarray, xyxy: np.ndarray) -> list[tuple]:
    return [
        (frame, int(i), b[0], b[1], b[2] - b[0], b[3] - b[1]) for i, b in zip(ids, xyxy) if i >= 0
    ]


def score(gt: Frames, gt_ids: dict[int, np.ndarray], rows: list[tuple]) -> dict[str, float]:
    """MOTA, IDF1, ID switches, mostly tracked, precision and recall of ``rows``.

    Pairs match at IoU >= 0.5, as motmetrics' MOTChallenge comparison does; the IoU is ours
    (motmetrics 1.4's own calls ``np.asfarray``, gone in NumPy 2).
    """
    import motmetrics as mm

    from processors.track.assign import iou_matrix

    hyp: dict[int, list[tuple]] = {}
    for row in rows:
        hyp.setdefault(row[0], []).append(row)
    acc = mm.MOTAccumulator(auto_id=False)
    for frame in sorted(set(gt.by_frame) | set(hyp)):
        gt_xyxy = gt.by_frame.get(frame, (np.zeros((0, 4)), None))[0]
        mine = hyp.get(frame, [])
        hyp_ids = [r[1] for r in mine]
        hyp_xyxy = np.array([[x, y, x + w, y + h] for _, _, x, y, w, h in mine]).reshape(-1, 4)
        iou = iou_matrix(gt_xyxy, hyp_xyxy)
        dist = np.where(iou >= 0.5, 1.0 - iou, np.nan)
        acc.update(gt_ids.get(frame, np.zeros(0, int)).tolist(), hyp_ids, dist, frameid=frame)
    summary = mm.metrics.create().compute(acc, metrics=METRICS, name="x")
    return {m: float(summary[m].iloc[0]) for m in METRICS}


def run(args: argparse.Namespace) -> int:
    try:
        import motmetrics  # noqa: F401
    except ImportError:
        raise StreamsError(
            "evaluate-tracker needs motmetrics: pip install 'streams[eval]'"
        ) from None
    gt = read_mot(args.gt, "--gt", ground_truth=True)
    det = read_mot(args.det, "--det")
    results = [("streams", *run_ours(det, args.fps, args.streams, args.tile), args.streams)]
    if args.compare == "trackers":
        for kind in ("bytetrack", "sort"):
            results.append((f"trackers {kind}", *run_trackers(det, args.fps, kind, args.tile), 1))
    boxes = sum(len(s) for _, s in det.by_frame.values()) / max(len(det.by_frame), 1)
    print(
        f"{args.det} vs {args.gt}: {len(det.by_frame)} frames at {args.fps:g} fps, "
        f"{boxes:.1f} boxes a frame"
        + (f" (x{args.tile} tiled)" if args.tile > 1 else "")
        + (f", {args.streams} streams a call" if args.streams > 1 else "")
    )
    print(
        f"{'tracker':<18}"
        + "".join(f"{h:>10}" for h in HEADERS)
        + f"{'ms/update':>11}{'ms/stream-frame':>17}"
    )
    for name, rows, times, streams in results:
        m = score(gt, gt.ids, rows)
        median_ms = statistics.median(times) * 1000 if times else 0.0
        print(
            f"{name:<18}{m['mota'] * 100:>9.1f}%{m['idf1'] * 100:>9.1f}%"
            f"{m['num_switches']:>10.0f}{m['mostly_tracked']:>10.0f}"
            f"{m['precision'] * 100:>9.1f}%{m['recall'] * 100:>9.1f}%"
            f"{median_ms:>11.3f}{median_ms / streams:>17.4f}"
        )
    return 0
