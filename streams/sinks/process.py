"""Bridges as child processes of ``streams run``: one per sink, restarted when it dies.

A process of its own per bridge keeps a broker client's work (TLS, JSON for discovery, an
asyncio loop) off the pipeline's GIL, and a bridge that crashes takes nothing else down: it
is restarted with back-off, its counters carry on, and its state reads ``restarting`` until
it is back. Figures (twice a second) and log records come up a queue of that process's own,
and the records leave through the main process's handlers (above the live table). The parent
only ever reads from it: a process killed while writing may leave the queue's lock held, and
the next process gets a fresh queue.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from logging.handlers import QueueHandler
from typing import Any

from streams.capture.backoff import Backoff
from streams.children import ignore_group_signals, start_resource_tracker
from streams.redact import redact_url
from streams.sinks.metrics import RESTARTING

logger = logging.getLogger(__name__)

FIGURES_EVERY_S = 0.5
STOP_GRACE_S = 10.0  # DRAIN_S to empty the buffer, plus a broker client's close
RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 30.0
COUNTERS = ("received", "sent", "reconnects")
JOIN_SETTLE_S = 0.2  # a SUB socket's handshake with a publisher already bound: well under this


def connect_endpoint(endpoint: str) -> str:
    """Where a local subscriber connects for a publisher bound at ``endpoint``
    (``tcp://*:5555`` and ``tcp://0.0.0.0:5555`` -> ``tcp://127.0.0.1:5555``)."""
    return re.sub(r"^tcp://(\*|0\.0\.0\.0):", "tcp://127.0.0.1:", endpoint)


def bridge_main(config, endpoint: str, figures: Any, level: int) -> None:
    """A bridge process (``spawn`` pickles a reference to this function); SIGTERM stops it.

    Not a shared multiprocessing Event: setting one waits for every process waiting on it to
    wake, and a process that was killed never does.
    """
    stop = threading.Event()
    ignore_group_signals()  # Ctrl-C and a hangup reach the whole group: the parent
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # decides when bridges stop
    root = logging.getLogger()
    root.handlers[:] = [QueueHandler(figures)]  # records and figures share the one queue
    root.setLevel(level)
    from streams.sinks.base import Bridge

    parent = os.getppid()
    bridge = Bridge(config, endpoint)
    bridge.start()
    _offer(figures, (config.name, bridge.figures()))  # subscribed: the parent may go on
    failed = False
    try:
        while not stop.wait(FIGURES_EVERY_S):
            if os.getppid() != parent:  # the parent was killed: no orphan bridges
                break
            if not bridge.alive:  # it gave up (logged): exit non-zero, to be restarted
                failed = True
                break
            _offer(figures, (config.name, bridge.figures()))
    finally:
        bridge.stop()
        _offer(figures, (config.name, bridge.figures()))
        root.handlers[:] = []
        figures.close()
        figures.join_thread()
    if failed:
        sys.exit(1)


def _offer(channel: Any, item: Any) -> None:
    try:
        channel.put_nowait(item)
    except queue.Full:
        pass  # the parent reads twice a second; a missed update is replaced by the next


@dataclass
class _Child:
    config: Any
    process: Any = None
    channel: Any = None  # this launch's queue: figures and log records
    figures: dict = field(default_factory=dict)
    base: dict = field(default_factory=dict)  # counters of the processes that died
    restarts: int = 0
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=lambda: Backoff(RESTART_INITIAL_S, RESTART_MAX_S))


class SinkProcesses:
    """Starts a bridge process per sink in ``config.sinks``, watches and restarts them."""

    def __init__(self, sinks, endpoint: str, log_level: int = logging.INFO) -> None:
        start_resource_tracker()  # before any child or semaphore: SIGHUP-proof
        self._spawn = multiprocessing.get_context("spawn")
        self._endpoint = connect_endpoint(endpoint)
        self._level = log_level
        self._stopping = threading.Event()
        self._children = [_Child(sink) for sink in sinks]
        self._lock = threading.Lock()
        self._watch = threading.Thread(target=self._watch_loop, name="sinks", daemon=True)

    def start(self, ready_timeout_s: float = 15.0) -> None:
        """Start every bridge; returns once each has subscribed (or ``ready_timeout_s``), so
        that the pipeline's first messages reach them."""
        for child in self._children:
            self._launch(child)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline and not all(c.figures for c in self._children):
            self._read_figures(0.1)
            if any(c.process.exitcode is not None for c in self._children):
                break  # the watcher reports and restarts it
        time.sleep(JOIN_SETTLE_S)
        self._watch.start()

    def _launch(self, child: _Child) -> None:
        child.channel = self._spawn.Queue(maxsize=10_000)
        child.process = self._spawn.Process(
            target=bridge_main,
            args=(child.config, self._endpoint, child.channel, self._level),
            name=f"sink-{child.config.name}",
            daemon=True,
        )
        child.process.start()
        child.restart_at = None

    def _watch_loop(self) -> None:
        while not self._stopping.is_set():
            self._read_figures(0.2)
            for child in self._children:
                self._supervise(child)

    def _read_figures(self, timeout_s: float) -> None:
        """Take what every bridge sent: figures kept, log records handled here."""
        deadline = time.monotonic() + timeout_s
        while True:
            got = 0
            for child in self._children:
                got += self._drain(child)
            if got == 0 and time.monotonic() >= deadline:
                return
            if got == 0:
                time.sleep(0.02)

    def _drain(self, child: _Child, most: int = 1000) -> int:
        channel = child.channel
        got = 0
        while channel is not None and got < most:
            try:
                item = channel.get_nowait()
            except (queue.Empty, EOFError, OSError, ValueError):
                break
            got += 1
            if isinstance(item, logging.LogRecord):
                logging.getLogger().handle(item)  # the main process's handlers, as its own
                continue
            with self._lock:
                child.figures = item[1]
        return got

    def _supervise(self, child: _Child) -> None:
        process = child.process
        if self._stopping.is_set() or process is None or process.exitcode is None:
            if child.restart_at is not None and time.monotonic() >= child.restart_at:
                self._launch(child)
            return
        self._drain(child)  # its last words
        with self._lock:  # its counters carry on in the next process
            for key in COUNTERS:
                child.base[key] = child.base.get(key, 0) + child.figures.get(key, 0)
            for reason, count in child.figures.get("dropped", {}).items():
                child.base[reason] = child.base.get(reason, 0) + count
            child.figures = {}
            child.restarts += 1
        _, delay = child.backoff.next()
        logger.error(
            "%s: the bridge process exited (code %s); restarting it in %.1f s (the pipeline "
            "runs on)",
            child.config.label,
            process.exitcode,
            delay,
        )
        child.process = None
        child.restart_at = time.monotonic() + delay

    def figures(self) -> list[dict]:
        """One row per sink, counters summed over its processes (Bridge.figures' shape)."""
        rows = []
        with self._lock:
            for child in self._children:
                own = child.figures
                base = child.base
                config = child.config
                row = {
                    "sink": config.name,
                    "type": config.type,
                    "url": redact_url(config.url),
                    "state": own.get("state", "connecting" if child.process else RESTARTING),
                    "queue_depth": own.get("queue_depth", 0),
                    "queue_bound": config.queue_size,
                    "error": own.get("error"),
                    "restarts": child.restarts,
                    "pid": child.process.pid if child.process is not None else None,
                }
                for key in COUNTERS:
                    row[key] = base.get(key, 0) + own.get(key, 0)
                reasons = ("queue_full", "client_queue", "lost_in_flight")
                row["dropped"] = {
                    r: base.get(r, 0) + own.get("dropped", {}).get(r, 0) for r in reasons
                }
                rows.append(row)
        return rows

    def stop(self) -> None:
        """Let each bridge drain (its buffer into a connected broker), then end it; their
        last figures and log lines are read meanwhile (a child blocks on a full queue)."""
        self._stopping.set()
        if self._watch.is_alive():
            self._watch.join(2)
        for child in self._children:
            if child.process is not None and child.process.exitcode is None:
                child.process.terminate()  # SIGTERM: drain and leave
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self._children:
            process = child.process
            if process is None:
                continue
            while process.exitcode is None and time.monotonic() < deadline:
                self._drain(child)
                process.join(0.05)
            if process.exitcode is None:
                logger.warning(
                    "%s: the bridge did not stop in time; killing it", child.config.label
                )
                process.kill()
                process.join(2)
            self._drain(child)
