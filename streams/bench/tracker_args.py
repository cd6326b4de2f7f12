"""The arguments of ``evaluate-tracker``, apart from the evaluation (which loads NumPy): the CLI
builds its parser before it may load any compiled library (SIGTERM is caught first)."""

from __future__ import annotations

import argparse
from pathlib import Path

from streams.arguments import positive_count, positive_rate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", type=Path, required=True, help="MOTChallenge ground truth (gt.txt)")
    parser.add_argument(
        "--det", type=Path, required=True, help="MOTChallenge detections (ids ignored)"
    )
    parser.add_argument(
        "--fps",
        type=positive_rate,
        default=25.0,
        help="frame rate: frame n is at n / fps s (default 25)",
    )
    parser.add_argument(
        "--streams",
        type=positive_count,
        default=1,
        help="track N copies in one call (cost per call)",
    )
    parser.add_argument(
        "--tile",
        type=positive_count,
        default=1,
        help="cost only: each frame's boxes K times side by side (K times the objects); "
        "the first copy is scored",
    )
    parser.add_argument(
        "--compare",
        choices=["trackers"],
        help="also run Roboflow's trackers ByteTrack and SORT (pip install trackers)",
    )
