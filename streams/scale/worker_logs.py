"""Worker processes log through the supervisor: their records cross a multiprocessing queue
and leave through the main process's handlers, so that on a terminal they print above the
live table like the main process's own (written straight to the shared stderr, the table's
redraw drew over them)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from logging.handlers import QueueHandler, QueueListener
from typing import Any

WORKER_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _ToSupervisor(QueueHandler):
    """A worker's records into the queue, named after the worker (``w1 streams.capture...``)."""

    def __init__(self, queue: Any, index: int) -> None:
        super().__init__(queue)
        self.index = index

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = super().prepare(record)  # the message formatted, no args or traceback left
        record.name = f"w{self.index} {record.name}"
        record.worker = self.index  # which worker said it (the supervisor looks for Xid errors)
        return record


class WorkerLogging:
    """In a worker process: its root logger at ``level``, into ``queue``."""

    def __init__(self, queue: Any, index: int, level: int) -> None:
        self._queue = queue
        self._handler = _ToSupervisor(queue, index)
        root = logging.getLogger()
        root.setLevel(level)
        root.addHandler(self._handler)

    def finish(self) -> None:
        """Hand over every record still buffered; later ones (the last words of a process
        leaving with ``os._exit``) go straight to stderr."""
        root = logging.getLogger()
        root.removeHandler(self._handler)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(WORKER_FORMAT, "%H:%M:%S"))
        root.addHandler(handler)
        self._queue.close()
        self._queue.join_thread()


class _ThroughMainHandlers(logging.Handler):
    def __init__(self, on_record: Callable[[logging.LogRecord], None] | None) -> None:
        super().__init__()
        self._on_record = on_record

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)  # the main process's handlers, as its own records
        if self._on_record is not None:
            try:
                self._on_record(record)
            except Exception:  # noqa: BLE001 - a record's consumer must not stop the listener
                logging.getLogger(__name__).exception("cannot handle a worker's log record")


def listen(
    queue: Any, on_record: Callable[[logging.LogRecord], None] | None = None
) -> QueueListener:
    """In the main process: the workers' records from ``queue`` through the root logger's
    handlers, from now until ``stop()``; each also to ``on_record`` (the supervisor's check
    for GPU faults) when given."""
    listener = QueueListener(queue, _ThroughMainHandlers(on_record))
    listener.start()
    return listener
