"""The terminal view of a run: rich's live table on a terminal, plain periodic lines otherwise.

On a terminal, rich's :class:`~rich.live.Live` redraws the table at the bottom and prints log
records above it (they go through the same console: :mod:`streams.cli.terminal`), and the
table is laid out for the terminal's width at each redraw: the full stream ids when they fit,
else ids shortened in the middle (``parki…orth-1``: the distinguishing tail stays) as long as
they stay distinct, and on a narrow terminal the less important columns go first
(:data:`NARROW_DROPS`). Piped or in CI, the table is printed as plain lines every few seconds.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[dict], str]
    right: bool = True  # numbers line up on the right


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


MAX_NAMED = 3  # zones and lines named in the zones column; more are summed


def zones_cell(row: dict) -> str:
    """A stream's zones and lines in a few characters: ``door:2 road:3/1`` (occupancy now,
    crossings in/out); ``zones:7 lines:12/5`` (summed) beyond :data:`MAX_NAMED` of them;
    ``off`` when they do not fit its frames; ``-`` for a stream without any."""
    zones, lines = row.get("zones", []), row.get("lines", [])
    if "analytics_error" in row:
        return "off"
    if not zones and not lines:
        return "-"
    if len(zones) + len(lines) <= MAX_NAMED:
        return " ".join(
            [f"{z['zone']}:{z['occupancy']}" for z in zones]
            + [f"{ln['line']}:{ln['in']}/{ln['out']}" for ln in lines]
        )
    parts = []
    if zones:
        parts.append(f"zones:{sum(z['occupancy'] for z in zones)}")
    if lines:
        parts.append(f"lines:{sum(ln['in'] for ln in lines)}/{sum(ln['out'] for ln in lines)}")
    return " ".join(parts)


COLUMNS = (
    Column("stream", lambda s: s["stream"], right=False),
    Column("state", lambda s: s["state"], right=False),
    Column("fps", lambda s: f"{s['fps']:.1f}"),
    Column("p50 ms", lambda s: _ms(s["p50_ms"])),
    Column("p99 ms", lambda s: _ms(s["p99_ms"])),
    Column("drops", lambda s: str(s["dropped"])),
    Column("done", lambda s: str(s["processed"])),
    Column("zones", zones_cell, right=False),  # only where a stream has zones or lines
)
# What a narrow terminal loses, in order.
NARROW_DROPS = ("zones", "done", "p50 ms", "drops", "p99 ms")


def columns_for(rows: list[dict]) -> list[Column]:
    """Every column, but ``zones`` only when a stream has zones or lines."""
    analytics = any("zones" in r or "lines" in r for r in rows)
    return [c for c in COLUMNS if c.header != "zones" or analytics]


MIN_ID = 10  # ids are not shortened below this many characters (the columns go first)
GAP = 2  # spaces between columns
LOG_ROOM = 8  # rows the live table leaves for log records above it on a short terminal


def pipeline_parts(snapshot: dict) -> list[str]:
    """The pipeline summary, piece by piece (a narrow terminal breaks lines between them);
    with several GPUs, one piece per GPU."""
    p = snapshot["pipeline"]
    shard = [f"shard {p['shard']['index']}/{p['shard']['count']}"] if "shard" in p else []
    return shard + [
        f"{snapshot['uptime_s']:.0f} s up",
        f"{p['batches']} batches",
        f"mean batch {p['mean_batch']}",
        f"inference p50 {_ms(p['inference_p50_ms'])} ms",
        f"published {p['published']}",
        f"publish drops {p['publish_dropped']}",
        *(gpu_part(g) for g in p.get("gpus", ())),
    ]


def gpu_part(gpu: dict) -> str:
    """``GPU 0 H200: 12 streams, 360.0 fps, p50 4.1 ms`` or ``GPU 1 failed``."""
    name = f"GPU {gpu['gpu']}" + (f" {gpu['name']}" if gpu.get("name") else "")
    if gpu["state"] == "failed":
        return f"{name} failed"
    return (
        f"{name}: {gpu['streams']} streams {gpu['fps']:.1f} fps "
        f"inference p50 {_ms(gpu['inference_p50_ms'])} ms"
    )


def format_table(snapshot: dict) -> list[str]:
    """Plain rows of the table for a Pipeline.snapshot(): full ids, one line each."""
    rows = snapshot["streams"]
    columns = columns_for(rows)
    cells = [[c.header for c in columns]] + [[c.cell(s) for c in columns] for s in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [
        (" " * GAP)
        .join(
            text.rjust(width) if column.right else text.ljust(width)
            for column, text, width in zip(columns, row, widths)
        )
        .rstrip()
        for row in cells
    ]
    return lines + ["pipeline: " + ", ".join(pipeline_parts(snapshot))]


def shorten_middle(text: str, width: int) -> str:
    """``text`` in ``width`` characters, cut in the middle, keeping more of the tail (where
    ids of one site differ: ``parking-lot-north-1`` -> ``parki…orth-1``)."""
    if len(text) <= width:
        return text
    keep = width - 1
    head = keep // 2
    return text[:head] + "…" + text[len(text) - (keep - head) :]


def fit_columns(rows: list[dict], width: int) -> tuple[list[Column], list[str]]:
    """The columns and the stream ids to show in ``width`` characters.

    Full ids when they fit; else ids shortened in the middle, if they stay distinct and keep
    :data:`MIN_ID` characters; else a column of :data:`NARROW_DROPS` goes and the same is
    tried again. With nothing left to drop, the full ids (rich folds them over lines).
    """
    ids = [s["stream"] for s in rows]
    columns = columns_for(rows)
    for drop in (None, *NARROW_DROPS):
        if drop is not None:
            columns = [c for c in columns if c.header != drop]
        others = sum(max([len(c.header)] + [len(c.cell(s)) for s in rows]) for c in columns[1:])
        room = width - others - GAP * (len(columns) - 1)
        if room >= max([len("stream")] + [len(i) for i in ids]):
            return columns, ids
        if room >= MIN_ID:
            short = [shorten_middle(i, room) for i in ids]
            if len(set(short)) == len(set(ids)):
                return columns, short
    return columns, ids


def wrap_parts(first: str, parts: list[str], width: int) -> list[str]:
    """``first`` and ``parts`` joined with ", " into lines of at most ``width`` characters,
    broken only between parts; continuation lines indented under the first part (by two
    spaces on a narrow terminal)."""
    indent = " " * (len(first) if width >= 60 else 2)
    lines, line = [], first + parts[0]
    for part in parts[1:]:
        if len(line) + 2 + len(part) <= width:
            line += ", " + part
        else:
            lines.append(line + ",")
            line = indent + part
    return lines + [line]


class StreamTable:
    """The table and pipeline summary as a rich renderable, laid out for the width rich
    renders it at. ``max_rows``: streams beyond this become one line that counts them by
    state (the live view leaves room for log records); None: every stream (the summary)."""

    def __init__(self, snapshot: dict, max_rows: int | None = None) -> None:
        self.snapshot = snapshot
        self.max_rows = max_rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.table import Table
        from rich.text import Text

        width = options.max_width
        rows = self.snapshot["streams"]
        parts = pipeline_parts(self.snapshot)
        pipeline = wrap_parts("pipeline: ", parts, width)
        shown = rows
        if self.max_rows is not None:
            room = max(1, self.max_rows - 1 - len(pipeline))  # the header
            if len(rows) > room:
                shown = rows[: max(1, room - 1)]  # and the line that counts the others
        columns, ids = fit_columns(rows, width)
        table = Table(box=None, pad_edge=False, padding=(0, GAP // 2), header_style="bold")
        for column in columns:
            if column.header == "stream":
                table.add_column(column.header, overflow="fold")
            else:
                table.add_column(column.header, justify="right" if column.right else "left")
        for row, stream_id in zip(shown, ids):
            table.add_row(stream_id, *(c.cell(row) for c in columns[1:]), style=_style(row))
        yield table
        if len(shown) < len(rows):
            states = Counter(r["state"] for r in rows[len(shown) :])
            more = ", ".join(f"{n} {state}" for state, n in states.most_common())
            yield Text(f"+{len(rows) - len(shown)} more streams: {more}", style="dim")
        for line in pipeline:
            yield Text(line, no_wrap=True, overflow="crop")


def _style(row: dict) -> str:
    return {"failed": "red", "reconnecting": "yellow", "ended": "dim"}.get(row["state"], "")


class LiveView:
    """The table kept on screen by rich's Live (refreshed every ``interval_s``) when
    ``console`` is an interactive terminal; otherwise printed as plain lines every
    ``plain_interval_s`` (logs, CI)."""

    def __init__(
        self,
        snapshot: Callable[[], dict],
        console: Console | None = None,
        out: TextIO | None = None,
        interval_s: float = 1.0,
        plain_interval_s: float = 5.0,
    ) -> None:
        self._snapshot = snapshot
        self._console = console if console is not None and console.is_interactive else None
        self._out = out or sys.stderr
        self._interval_s = interval_s
        self._plain_interval_s = plain_interval_s
        self._stop = threading.Event()
        self._live = None
        self._thread = threading.Thread(target=self._run, name="live-view", daemon=True)

    def start(self) -> None:
        if self._console is None:
            self._thread.start()
            return
        from rich.live import Live

        self._live = Live(
            console=self._console,
            get_renderable=self._renderable,
            refresh_per_second=1.0 / self._interval_s,
            transient=True,  # the summary replaces it at the end
        )
        self._live.start()

    def _renderable(self) -> StreamTable:
        height = self._console.size.height
        return StreamTable(self._snapshot(), max_rows=max(3, height - min(LOG_ROOM, height // 3)))

    def _run(self) -> None:
        while not self._stop.wait(self._plain_interval_s):
            self.draw()

    def draw(self) -> None:
        """Print the table once as plain lines."""
        self._out.write("\n".join(format_table(self._snapshot())) + "\n")
        self._out.flush()

    def stop(self) -> None:
        """Stop redrawing; safe when ``start`` never ran (the run failed while starting)."""
        self._stop.set()
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._thread.ident is not None:
            self._thread.join(2.0)


def print_summary(snapshot: dict, console: Console | None, out: TextIO | None = None) -> None:
    """The final table: laid out for the terminal on one, plain lines otherwise."""
    if console is not None and console.is_interactive:
        console.print("summary:")
        console.print(StreamTable(snapshot))
    else:
        print("\n".join(["summary:"] + format_table(snapshot)), file=out or sys.stderr)
