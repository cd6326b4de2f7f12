"""The tracker's cost per update before and after a change, interleaved in one run.

Runs ``streams evaluate-tracker`` on TUD-Stadtmitte (motmetrics' data) with ``processors``
of ``--ref`` (a git revision, extracted with ``git archive``) and of the working tree,
alternating, ``--rounds`` times for each shape (streams per call x tile), and prints each
side's median ms per update and the ratio. Each run is its own process, with the editable
install's import finder switched off so that the tree on the path is the one imported (it
is checked: a comparison of the checkout with itself is refused).

    python benchmarks/tracker_before_after.py --ref HEAD~1 --rounds 3
    /tmp/oracle/bin/python benchmarks/tracker_before_after.py --ref HEAD~1 --compare trackers
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from revision import ROOT, processors_of, run_python  # noqa: E402

SHAPES = ((1, 1), (1, 5), (8, 5), (128, 1), (128, 5))

CHILD = r"""
from streams.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def evaluate(tree: Path, streams: int, tile: int, compare: str | None) -> dict[str, float]:
    """ms per update of ours (and of ``trackers``' ByteTrack with ``compare``)."""
    import motmetrics

    data = Path(motmetrics.__file__).parent / "data" / "TUD-Stadtmitte"
    args = ["--gt", str(data / "gt.txt"), "--det", str(data / "test.txt")]
    args += ["--streams", str(streams), "--tile", str(tile)]
    if compare:
        args += ["--compare", compare]
    out = run_python(tree, CHILD, "evaluate-tracker", *args).decode()
    times = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and re.fullmatch(r"[\d.]+", cells[-1]) and cells[0] in ("streams", "trackers"):
            name = " ".join(cells[:2]) if cells[0] == "trackers" else cells[0]
            times[name] = float(cells[-2])  # ms/update (the last column: per stream-frame)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", choices=["trackers"], help="also trackers' ByteTrack")
    args = parser.parse_args()
    with processors_of(args.ref) as before:
        print(f"ms per update, median of {args.rounds} (before: {args.ref}; after: the tree)")
        for streams, tile in SHAPES:
            runs: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for side, tree in (("before", before), ("after", ROOT)):
                    compare = args.compare if side == "after" and streams == 1 else None
                    for name, ms in evaluate(tree, streams, tile, compare).items():
                        key = side if name.startswith("streams") else name
                        runs.setdefault(key, []).append(ms)
            median = {k: statistics.median(v) for k, v in runs.items()}
            line = f"{streams:>4} streams, tile {tile}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in median.items()
            )
            print(f"{line}; after / before {median['after'] / median['before']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
