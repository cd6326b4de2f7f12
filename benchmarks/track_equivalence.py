"""Check that processors/track gives the same ids as another revision's, box for box.

Runs the tracker of ``--ref`` (a git revision, extracted with ``git archive``) and of the working
tree, each in its own process, on TUD-Campus and TUD-Stadtmitte (motmetrics' data) as 1 stream
and as 8 and 128 streams in one call (each stream its own frame offset and jitter, so the
streams differ), plus the ``--tile 5`` crowd, and compares every id of every box and the final
Kalman state bit for bit. Exit status 1 on any difference.

    python benchmarks/track_equivalence.py --ref main
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from revision import ROOT, processors_of, run_python  # noqa: E402

CHILD = r"""
import pickle, sys
from pathlib import Path
import motmetrics
import numpy as np
from processors.track import MultiStreamTracker, TrackerParams
from streams.bench.tracker import read_mot

data = Path(motmetrics.__file__).parent / "data"
out = {}
for name in ("TUD-Campus", "TUD-Stadtmitte"):
    det = read_mot(data / name / "test.txt", "det")
    last = max(det.by_frame)
    width = 1 + max(float(x[:, 2].max()) for x, _ in det.by_frame.values() if len(x))
    for streams, tile, params in ((1, 1, None), (1, 5, None), (8, 1, None), (128, 1, None),
                                  (8, 5, None), (8, 1, TrackerParams(confirm_hits=1))):
        rng = np.random.default_rng(streams * 10 + tile)
        tracker = MultiStreamTracker(params)
        names = [f"s{i}" for i in range(streams)]
        shift = rng.integers(0, last, streams)  # each stream starts elsewhere in the sequence
        ids = []
        for frame in range(1, last + 1):
            boxes, scores, classes, pts = [], [], [], []
            for k in range(streams):
                f = (frame + shift[k] - 1) % last + 1  # wraps: pts goes back, a reset
                xyxy, s = det.by_frame.get(f, (np.zeros((0, 4)), np.zeros(0)))
                xyxy = np.concatenate([xyxy + [j * width, 0, j * width, 0] for j in range(tile)])
                s = np.tile(s, tile)
                if k:  # other streams: jittered boxes, scores spread over every stage
                    xyxy = xyxy + rng.normal(0, 2, xyxy.shape)
                    s = s * rng.uniform(0.05, 1.0, len(s))
                boxes.append(xyxy)
                scores.append(s)
                classes.append(rng.integers(0, 2, len(s)) if k % 2 else np.zeros(len(s)))
                pts.append(f / 25.0)
            live = [k for k in range(streams) if k == 0 or rng.random() > 0.1]  # some skip
            got = tracker.update([names[k] for k in live], [pts[k] for k in live],
                                 [boxes[k] for k in live], [scores[k] for k in live],
                                 [classes[k] for k in live])
            ids.append([(k, g.tolist()) for k, g in zip(live, got)])
        rows = tracker._rows
        state = {key: np.asarray(v).tobytes() for key, v in vars(rows).items()}
        if np.shape(rows.covs)[1:] == (4, 4):  # blocks (since the 2x2 filter): as 8x8
            from processors.track.kalman import full_covariance
            state["covs"] = full_covariance(rows.covs).tobytes()
        out[(name, streams, tile, params)] = (ids, state)
pickle.dump(out, sys.stdout.buffer)
"""


def run(tree: Path) -> dict:
    return pickle.loads(run_python(tree, CHILD))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="main", help="git revision to compare with")
    args = parser.parse_args()
    with processors_of(args.ref) as tree:
        before = run(tree)
    after = run(ROOT)
    bad = 0
    for key, (ids, state) in before.items():
        new_ids, new_state = after[key]
        boxes = sum(len(g) for frame in ids for _, g in frame)
        same_ids = ids == new_ids
        same_state = state == new_state
        bad += not (same_ids and same_state)
        print(
            f"{key[0]:<15} streams {key[1]:>3} tile {key[2]} "
            f"{'confirm_hits=1 ' if key[3] else '':<15}{boxes:>8} boxes: "
            f"ids {'same' if same_ids else 'DIFFER'}, state {'same' if same_state else 'DIFFER'}"
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
