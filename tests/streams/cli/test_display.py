import io

from streams.cli.display import LiveView, format_table

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


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_table_shows_fps_latency_drops_and_state_per_stream():
    rows = format_table(SNAPSHOT)
    assert rows[0].split() == ["stream", "state", "fps", "p50", "ms", "p99", "ms", "drops", "done"]
    assert rows[1].split() == ["cam1", "live", "24.5", "41.0", "90.5", "3", "70"]
    assert rows[2].split() == ["cam2", "reconnecting", "0.0", "-", "-", "0", "0"]
    assert "mean batch 1.75" in rows[3]


def test_plain_output_when_not_a_terminal():
    out = io.StringIO()
    view = LiveView(lambda: SNAPSHOT, out=out)
    view.draw()
    view.draw()
    assert "\x1b[" not in out.getvalue()
    assert out.getvalue().count("cam1") == 2


def test_terminal_output_redraws_in_place():
    out = FakeTerminal()
    view = LiveView(lambda: SNAPSHOT, out=out)
    view.draw()
    first = out.getvalue()
    view.draw()
    assert "\x1b[" not in first
    assert out.getvalue()[len(first) :].startswith("\x1b[4F\x1b[J")  # up 4 rows, clear, redraw
