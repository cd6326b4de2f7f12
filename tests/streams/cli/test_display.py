import io

from rich.console import Console

from streams.cli.display import LiveView, StreamTable, format_table

SNAPSHOT = {
    "uptime_s": 3.0,
    "streams": [
        {
            "stream": "cam1",
            "state": "live",
            "fps": 24.5,
            "p50_ms": 41.0,
            "p99_ms": 90.5,
            "dropped": 3,
            "processed": 70,
        },
        {
            "stream": "cam2",
            "state": "reconnecting",
            "fps": 0.0,
            "p50_ms": None,
            "p99_ms": None,
            "dropped": 0,
            "processed": 0,
        },
    ],
    "pipeline": {
        "batches": 40,
        "mean_batch": 1.75,
        "inference_p50_ms": 30.0,
        "published": 150,
        "publish_dropped": 0,
    },
}


def render(snapshot: dict, width: int, max_rows: int | None = None) -> list[str]:
    """What rich prints for the table in a terminal ``width`` columns wide."""
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(StreamTable(snapshot, max_rows))
    return console.file.getvalue().splitlines()


def with_ids(*ids: str) -> dict:
    row = SNAPSHOT["streams"][0]
    return {**SNAPSHOT, "streams": [{**row, "stream": i} for i in ids]}


def test_table_shows_fps_latency_drops_and_state_per_stream():
    rows = format_table(SNAPSHOT)
    assert rows[0].split() == ["stream", "state", "fps", "p50", "ms", "p99", "ms", "drops", "done"]
    assert rows[1].split() == ["cam1", "live", "24.5", "41.0", "90.5", "3", "70"]
    assert rows[2].split() == ["cam2", "reconnecting", "0.0", "-", "-", "0", "0"]
    assert "mean batch 1.75" in rows[3]


def test_plain_rows_keep_whole_ids():
    rows = format_table(with_ids("parking-lot-north-1", "parking-lot-north-2"))
    assert [r.split()[0] for r in rows[1:3]] == ["parking-lot-north-1", "parking-lot-north-2"]


def test_plain_output_when_not_a_terminal():
    out = io.StringIO()
    view = LiveView(lambda: SNAPSHOT, console=None, out=out)
    view.draw()
    view.draw()
    assert "\x1b[" not in out.getvalue()
    assert out.getvalue().count("cam1") == 2


def test_every_column_and_whole_ids_in_80_columns():
    ids = ["parking-lot-north-1", "parking-lot-north-2"]
    lines = render(with_ids(*ids), 80)
    assert lines[0].split() == ["stream", "state", "fps", "p50", "ms", "p99", "ms", "drops", "done"]
    assert [line.split()[0] for line in lines[1:3]] == ids
    assert lines[3].startswith("pipeline: ") and all(len(line) <= 80 for line in lines)


def test_a_narrow_terminal_shortens_ids_in_the_middle_and_drops_columns():
    lines = render(with_ids("parking-lot-north-1", "parking-lot-north-2"), 40)
    assert all(len(line) <= 40 for line in lines), lines
    first, second = (line.split()[0] for line in lines[1:3])
    assert first != second and first.endswith("-1") and second.endswith("-2") and "…" in first
    assert lines[0].split()[:3] == ["stream", "state", "fps"]  # these stay longest
    assert "done" not in lines[0]


def test_ids_that_differ_in_the_middle_are_never_shortened_alike():
    ids = ("site-a-entrance-camera-0001", "site-b-entrance-camera-0001")
    lines = render(with_ids(*ids), 50)
    shown = " ".join(lines)
    assert all(len(line) <= 50 for line in lines), lines
    assert "site-a" in shown and "site-b" in shown


def test_the_pipeline_line_breaks_between_its_parts():
    lines = render(SNAPSHOT, 50)
    at = next(i for i, line in enumerate(lines) if line.startswith("pipeline: "))
    assert len(lines) - at >= 2 and all(len(line) <= 50 for line in lines[at:])
    text = " ".join(line.strip() for line in lines[at:])
    assert "inference p50 30.0 ms" in text and "publish drops 0" in text


def test_streams_beyond_the_room_are_counted_by_state():
    snapshot = with_ids(*(f"cam{i}" for i in range(30)))
    lines = render(snapshot, 80, max_rows=10)
    assert len(lines) <= 10
    assert "+24 more streams: 24 live" in lines


def zoned(zones: list[tuple[str, int]], lines: list[tuple[str, int, int]], **extra) -> dict:
    """SNAPSHOT with cam1 counting zones (name, occupancy) and lines (name, in, out)."""
    row = {
        **SNAPSHOT["streams"][0],
        "zones": [{"zone": n, "occupancy": o, "by_class": []} for n, o in zones],
        "lines": [{"line": n, "in": i, "out": o, "by_class": []} for n, i, o in lines],
        **extra,
    }
    return {**SNAPSHOT, "streams": [row, SNAPSHOT["streams"][1]]}


def test_a_zones_column_only_where_a_stream_has_zones_or_lines():
    assert "zones" not in format_table(SNAPSHOT)[0]  # a run without any: the table as before
    rows = format_table(zoned([("door", 2)], [("road", 3, 1)]))
    assert rows[0].split()[-1] == "zones"
    assert rows[1].endswith("door:2 road:3/1") and rows[2].split()[-1] == "-"
    many = zoned([("a", 1), ("b", 2)], [("c", 3, 4), ("d", 5, 6)])
    assert format_table(many)[1].endswith("zones:3 lines:8/10")  # summed beyond three
    off = zoned([("door", 0)], [], analytics_error="streams[0].zones[0].points[1]: ...")
    assert format_table(off)[1].split()[-1] == "off"


def test_a_narrow_terminal_drops_the_zones_column_first():
    snapshot = zoned([("door", 2)], [("road", 3, 1)])
    assert render(snapshot, 100)[0].split()[-1] == "zones"
    lines = render(snapshot, 62)
    assert all(len(line) <= 62 for line in lines), lines
    assert lines[0].split() == ["stream", "state", "fps", "p50", "ms", "p99", "ms", "drops", "done"]


def test_several_gpus_get_a_summary_part_each_and_a_failed_one_says_so():
    gpus = [
        {"gpu": 0, "name": "NVIDIA H200", "state": "ok", "processes": 2, "streams": 12,
         "fps": 360.0, "batches": 10, "mean_batch": 12.0, "inference_p50_ms": 4.12},
        {"gpu": 1, "name": None, "state": "failed", "reason": "GPU 1 failed: Xid 79",
         "processes": 2, "streams": 0, "fps": 0.0, "batches": 0, "mean_batch": 0.0,
         "inference_p50_ms": None},
    ]  # fmt: skip
    snapshot = {**SNAPSHOT, "pipeline": {**SNAPSHOT["pipeline"], "gpus": gpus}}
    text = "\n".join(format_table(snapshot))
    assert "GPU 0 NVIDIA H200: 12 streams 360.0 fps inference p50 4.1 ms" in text
    assert "GPU 1 failed" in text
    lines = render(snapshot, 60)
    assert any(line.strip().startswith("GPU 0 NVIDIA H200: 12 streams") for line in lines), lines
    assert "GPU 1 failed" not in "\n".join(render(SNAPSHOT, 200))  # one device: no GPU part
