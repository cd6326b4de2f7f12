"""Logging for the command line, and the one console that log records and the live table
share on a terminal (so that records print above the table instead of being drawn over)."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
TIME_FORMAT = "%H:%M:%S"


def configure_logging(level: int) -> Console | None:
    """Log records to stderr at ``level``; returns the rich console they go through when
    stderr is an interactive terminal (None otherwise: plain lines, as in a log file)."""
    from streams.cli.systemd import JournalFormatter, journal_stderr

    if journal_stderr():  # under systemd: lines journald reads the priority of (it adds the time)
        handler = logging.StreamHandler()
        handler.setFormatter(JournalFormatter())
        logging.basicConfig(level=level, handlers=[handler])
        return None
    console = _terminal_console()
    if console is None:
        logging.basicConfig(level=level, format=PLAIN_FORMAT, datefmt=TIME_FORMAT)
        return None
    from rich.logging import RichHandler

    handler = RichHandler(
        console=console,
        show_path=False,
        omit_repeated_times=False,
        log_time_format=TIME_FORMAT,
        markup=False,
    )
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    return console


def _terminal_console() -> Console | None:
    if not sys.stderr.isatty():  # rich is not even imported for a pipe or a log file
        return None
    from rich.console import Console

    console = Console(stderr=True)
    return console if console.is_interactive else None
