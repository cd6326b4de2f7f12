"""``python -m streams evaluate-tracker``: a real subprocess on TUD-Campus (motmetrics' copy)."""

from __future__ import annotations

import re
from pathlib import Path

import motmetrics
import pytest

from tests.helpers import run_cli

CAMPUS = Path(motmetrics.__file__).parent / "data" / "TUD-Campus"


def test_prints_the_metrics_and_the_update_time():
    result = run_cli(
        "evaluate-tracker", "--gt", str(CAMPUS / "gt.txt"), "--det", str(CAMPUS / "test.txt")
    )
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()[-2:]
    for name in ("MOTA", "IDF1", "ID sw", "MT", "precision", "recall", "ms/update"):
        assert name in header
    # streams  53.8%  57.5%  2  1  95.3%  57.1%  <ms>  <ms>
    match = re.fullmatch(
        r"streams\s+([\d.]+)%\s+([\d.]+)%\s+(\d+)\s+(\d+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)\s+"
        r"([\d.]+)",
        row,
    )
    assert match, row
    mota, idf1, switches, _, precision, recall, update_ms, _ = map(float, match.groups())
    assert mota >= 52 and idf1 >= 55 and switches <= 4, row
    assert precision >= 90 and recall >= 55, row
    assert 0 < update_ms < 50, row


def test_copies_and_tiles_score_the_same():
    """Copies in one call and tiled boxes change the cost, not the first copy's tracks."""
    result = run_cli(
        "evaluate-tracker",
        "--gt",
        str(CAMPUS / "gt.txt"),
        "--det",
        str(CAMPUS / "test.txt"),
        "--streams",
        "4",
        "--tile",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert re.match(r"streams\s+53\.8%\s+57\.5%", result.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--det", "/nonexistent/det.txt"], "--det: cannot read /nonexistent/det.txt"),
        (["--det", __file__], "--det: "),
    ],
)
def test_bad_input_is_one_line(args, expected):
    result = run_cli("evaluate-tracker", "--gt", str(CAMPUS / "gt.txt"), *args)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
