"""The live view as a user sees it (issue 11, item 1): ``python -m streams run`` in a real
80x24 pseudo-terminal, two cameras on closed ports (a WARNING per reconnect) and the two
sample files, read back through a terminal emulator (pyte)."""

import re

import pytest

from tests.helpers import free_port, run_cli, write_config
from tests.support.terminal import TerminalRun, run_in_terminal

IDS = ("parking-lot-north-1", "parking-lot-north-2")
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def write_cameras_and_files(path, assets, **sections):
    cameras = [{"id": i, "url": f"rtsp://127.0.0.1:{free_port()}/live"} for i in IDS]
    files = [
        {"id": "bikes", "url": str(assets.videos["bikes.mp4"])},
        {"id": "carphone", "url": str(assets.videos["carphone_pristine.mp4"])},
    ]
    return write_config(
        path,
        cameras + files,
        free_port(),
        capture={"reconnect_initial_s": 0.5, "reconnect_max_s": 1.0},
        **sections,
    )


def count_warnings(run: TerminalRun) -> tuple[int, int]:
    """(WARNING records written, WARNING records on the terminal at the end)."""
    return warnings_written(run.raw), run.text.count("WARNING")


def warnings_written(raw: bytes) -> int:
    return ESCAPE.sub("", raw.decode(errors="replace")).count("WARNING")


def seen_enough(raw: bytes) -> bool:
    """A ``stop_when`` for run_in_terminal: each camera retried twice (four WARNINGs, each
    camera's id in two of them)."""
    text = ESCAPE.sub("", raw.decode(errors="replace"))
    return text.count("WARNING") >= 4 and all(text.count(f"{i}:") >= 2 for i in IDS)


@pytest.fixture(scope="module")
def config(assets, tmp_path_factory):
    return write_cameras_and_files(tmp_path_factory.mktemp("live") / "c.yaml", assets)


@pytest.fixture(scope="module")
def terminal(config) -> TerminalRun:
    run = run_in_terminal(
        "run", str(config), "--duration", "6", columns=80, rows=24, stop_when=seen_enough
    )
    assert run.returncode == 0, run.text
    return run


def test_every_warning_stays_on_the_terminal(terminal):
    written, shown = count_warnings(terminal)
    assert written >= 4, terminal.text  # each closed port was retried at least twice
    assert shown == written, terminal.text  # none drawn over
    for stream_id in IDS:
        assert terminal.text.count(f"{stream_id}:") >= 2, terminal.text


def test_nothing_wraps_and_no_stale_header_is_left(terminal):
    assert terminal.wrapped == [], "\n".join(terminal.wrapped)  # every line laid out for 80
    headers = [line for line in terminal.lines if line.split()[:2] == ["stream", "state"]]
    assert len(headers) == 1, terminal.text  # the summary's: the live table leaves none
    pipeline = [line for line in terminal.lines if line.startswith("pipeline: ")]
    assert len(pipeline) == 1 and " s up" in pipeline[0], terminal.text


def test_long_ids_stay_distinguishable_with_every_column(terminal):
    at = next(i for i, line in enumerate(terminal.lines) if line.startswith("summary:"))
    header, *rows = terminal.lines[at + 1 : at + 6]
    assert header.split() == ["stream", "state", "fps", "p50", "ms", "p99", "ms", "drops", "done"]
    assert [row.split()[0] for row in rows] == [*IDS, "bikes", "carphone"], terminal.text
    assert all(len(row.split()) == 7 for row in rows), terminal.text


def test_piped_output_is_plain_periodic_lines(config):
    result = run_cli("run", str(config), "--duration", "6", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stderr  # no redraw, no colour
    tables = result.stderr.count("\npipeline: ")
    assert tables >= 2, result.stderr  # the table every 5 s, and the summary
    assert result.stderr.count("\nparking-lot-north-2 ") == tables, result.stderr


def test_worker_processes_log_above_the_table_too(assets, tmp_path):
    config = write_cameras_and_files(tmp_path / "c.yaml", assets, workers={"processes": 2})
    # Stopped by SIGINT mid-run: the workers' last log lines must still come before the
    # summary (they once came after it 1 run in 3, the summary's last line running into one).
    run = run_in_terminal(
        "run", str(config), "--duration", "8", columns=80, rows=24, stop_when=seen_enough
    )
    assert run.returncode == 0, run.text
    records = [i for i, line in enumerate(run.lines) if re.match(r"\d\d:\d\d:\d\d ", line)]
    summary = run.lines.index("summary:")
    assert records[-1] < summary, run.text
    written, shown = count_warnings(run)
    assert written >= 4 and shown == written, run.text
    assert "w0 streams." in run.text and "w1 streams." in run.text  # each worker's own
    assert run.wrapped == [], "\n".join(run.wrapped)
