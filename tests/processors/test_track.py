"""The tracker on real MOTChallenge sequences (TUD-Campus, TUD-Stadtmitte, shipped in the
motmetrics wheel): quality above measured thresholds, streams kept apart, gaps predicted over,
reset starting afresh."""

from __future__ import annotations

from pathlib import Path

import motmetrics
import numpy as np
import pytest

from processors.errors import ProcessorError
from processors.track import MultiStreamTracker
from streams.bench.tracker import Frames, read_mot, score

DATA = Path(motmetrics.__file__).parent / "data"
FPS = 25.0  # both TUD sequences


def sequence(name: str) -> tuple[Frames, Frames]:
    return read_mot(DATA / name / "gt.txt", "gt", ground_truth=True), read_mot(
        DATA / name / "test.txt", "det"
    )


def track(
    det: Frames, frames: list[int], pts_s: list[float], streams: list[str], tracker=None
) -> list[list[tuple]]:
    """Hypothesis rows per stream, each stream fed ``det``'s frames at ``pts_s``, in one call."""
    tracker = tracker or MultiStreamTracker()
    rows: list[list[tuple]] = [[] for _ in streams]
    for frame, now in zip(frames, pts_s):
        xyxy, scores = det.by_frame.get(frame, (np.zeros((0, 4)), np.zeros(0)))
        n = len(streams)
        ids = tracker.update(
            streams, [now] * n, [xyxy] * n, [scores] * n, [np.zeros(len(xyxy))] * n
        )
        for k, stream_ids in enumerate(ids):
            rows[k] += [
                (frame, int(i), b[0], b[1], b[2] - b[0], b[3] - b[1])
                for i, b in zip(stream_ids, xyxy)
                if i >= 0
            ]
    return rows


def all_frames(det: Frames) -> list[int]:
    return list(range(1, max(det.by_frame) + 1))


# Measured (2026-12-02): TUD-Campus MOTA 53.8 %, IDF1 57.5 %; TUD-Stadtmitte 56.2 %, 64.9 %.
# For scale, on the same detections: the ids test.txt came with score 52.6 / 55.8 % and
# 56.4 / 64.5 %; Roboflow trackers' ByteTrack 53.5 / 49.9 % and 56.1 / 57.4 %; a tracker giving
# every box a fresh id -0.6 / 2.8 % and -2.7 / 1.1 %. The thresholds sit just under ours.
@pytest.mark.parametrize(
    "name, min_mota, min_idf1", [("TUD-Campus", 0.52, 0.55), ("TUD-Stadtmitte", 0.55, 0.62)]
)
def test_quality_on_tud(name, min_mota, min_idf1):
    gt, det = sequence(name)
    frames = all_frames(det)
    (rows,) = track(det, frames, [f / FPS for f in frames], ["cam"])
    metrics = score(gt, gt.ids, rows)
    assert metrics["mota"] >= min_mota, metrics
    assert metrics["idf1"] >= min_idf1, metrics


def test_streams_in_one_call_keep_their_own_ids():
    """The same sequence as two streams: each gets exactly what it gets alone (a shared id
    counter, supervision's bug, would hand the second copy other ids)."""
    _, det = sequence("TUD-Stadtmitte")
    frames = all_frames(det)
    pts = [f / FPS for f in frames]
    (alone,) = track(det, frames, pts, ["a"])
    both = track(det, frames, pts, ["a", "b"])
    assert len(alone) > 500
    assert both[0] == alone
    assert both[1] == alone


def test_dropped_frames_are_predicted_over():
    """Frames 41-60 dropped (0.8 s; a person walks 80 px, more than a box's width): with the
    pts jump the tracks are predicted across and keep their ids, no more switches than without
    the gap. The same frames fed as if consecutive (pts ignored) do lose them."""
    gt, det = sequence("TUD-Stadtmitte")
    kept = [f for f in all_frames(det) if not 41 <= f <= 60]
    gt_kept = Frames({f: gt.by_frame[f] for f in kept}, {f: gt.ids[f] for f in kept})
    (rows,) = track(det, kept, [f / FPS for f in kept], ["cam"])
    (as_if_consecutive,) = track(det, kept, [k / FPS for k in range(len(kept))], ["cam"])
    with_pts = score(gt_kept, gt_kept.ids, rows)
    without = score(gt_kept, gt_kept.ids, as_if_consecutive)
    frames = all_frames(det)
    (full_rows,) = track(det, frames, [f / FPS for f in frames], ["cam"])
    full = score(gt, gt.ids, full_rows)
    # Measured: 5 switches (IDF1 69 %) with the gap, 6 without it, 7 (IDF1 55 %) pts ignored.
    assert with_pts["num_switches"] <= full["num_switches"], (with_pts, full)
    assert without["num_switches"] > with_pts["num_switches"], (without, with_pts)
    assert with_pts["idf1"] > without["idf1"] + 0.1, (with_pts, without)


def test_reset_starts_afresh_with_new_ids_and_leaves_other_streams():
    _, det = sequence("TUD-Campus")
    frames = all_frames(det)
    pts = [f / FPS for f in frames]
    (alone,) = track(det, frames, pts, ["other"])
    tracker = MultiStreamTracker()
    first = track(det, frames[:30], pts[:30], ["cam", "other"], tracker)
    assert tracker.track_count("cam") > 0
    tracker.reset("cam")
    assert tracker.track_count("cam") == 0
    assert tracker.track_count("other") > 0
    second = track(det, frames[30:], pts[30:], ["cam", "other"], tracker)
    before = {r[1] for r in first[0]}
    after = {r[1] for r in second[0]}
    assert before and after
    assert min(after) > max(before)  # never reused
    assert first[1] + second[1] == alone  # the other stream did not notice


def test_pts_going_back_resets_the_stream():
    """A file that loops: its pts start again, so do its tracks (with new ids)."""
    _, det = sequence("TUD-Campus")
    frames = all_frames(det)
    tracker = MultiStreamTracker()
    (lap1,) = track(det, frames, [f / FPS for f in frames], ["cam"], tracker)
    (lap2,) = track(det, frames, [f / FPS for f in frames], ["cam"], tracker)
    assert min(r[1] for r in lap2) > max(r[1] for r in lap1)
    assert len(lap2) == len(lap1)


def test_tracks_of_another_class_are_not_matched():
    box = np.array([[100.0, 100.0, 150.0, 200.0]])
    tracker = MultiStreamTracker()
    for k in range(3):
        (person,) = tracker.update(["cam"], [k / 30], [box], [np.array([0.9])], [np.array([0])])
    (car,) = tracker.update(["cam"], [3 / 30], [box], [np.array([0.9])], [np.array([2])])
    (car2,) = tracker.update(["cam"], [4 / 30], [box], [np.array([0.9])], [np.array([2])])
    assert person[0] >= 1
    assert car[0] == -1  # a new, unconfirmed track, not the person's
    assert car2[0] not in (-1, person[0])


@pytest.mark.parametrize(
    "streams, boxes, scores, expected",
    [
        (["a", "a"], [np.zeros((0, 4))] * 2, [np.zeros(0)] * 2, "appears twice"),
        (["a"], [np.zeros((2, 4))], [np.zeros(1)], r"stream a: boxes \(2, 4\), 1 scores"),
        (["a"], [np.zeros((2, 3))], [np.zeros(2)], r"expected \(n, 4\) boxes"),
        (["a", "b"], [np.zeros((0, 4))], [np.zeros(0)], "2 stream ids, 2 pts, 1 box arrays"),
    ],
)
def test_bad_input_is_named(streams, boxes, scores, expected):
    tracker = MultiStreamTracker()
    classes = [np.zeros(len(s)) for s in scores]
    with pytest.raises(ProcessorError, match=expected):
        tracker.update(streams, [0.0] * len(streams), boxes, scores, classes)


def test_the_order_of_streams_in_a_call_does_not_matter():
    """Streams met in one order, then updated in others (a batch holds whichever frames came)."""
    _, campus = sequence("TUD-Campus")
    _, stadt = sequence("TUD-Stadtmitte")
    frames = all_frames(campus)
    (campus_alone,) = track(campus, frames, [f / FPS for f in frames], ["x"])
    (stadt_alone,) = track(stadt, frames, [f / FPS for f in frames], ["y"])
    tracker = MultiStreamTracker()
    empty = [np.zeros((0, 4))] * 2, [np.zeros(0)] * 2, [np.zeros(0)] * 2
    tracker.update(["campus", "stadt"], [0.0, 0.0], *empty)  # slots in this order
    got = {"campus": [], "stadt": []}
    for k, frame in enumerate(frames):
        order = ["stadt", "campus"] if k % 2 == 0 else ["campus", "stadt"]
        seqs = {"campus": campus, "stadt": stadt}
        parts = [seqs[name].by_frame.get(frame, (np.zeros((0, 4)), np.zeros(0))) for name in order]
        ids = tracker.update(
            order,
            [frame / FPS] * 2,
            [x for x, _ in parts],
            [s for _, s in parts],
            [np.zeros(len(s)) for _, s in parts],
        )
        for name, (xyxy, _), stream_ids in zip(order, parts, ids):
            got[name] += [
                (frame, int(i), b[0], b[1], b[2] - b[0], b[3] - b[1])
                for i, b in zip(stream_ids, xyxy)
                if i >= 0
            ]
    assert got["campus"] == campus_alone
    assert got["stadt"] == stadt_alone
