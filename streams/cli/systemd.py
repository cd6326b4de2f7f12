"""Running under systemd: sd_notify readiness, watchdog pings, STATUS lines, journald logging.

sd_notify is a few lines of the documented socket protocol (``sd_notify(3)``): newline-separated
``KEY=VALUE`` pairs in one datagram to the unix socket named by ``$NOTIFY_SOCKET`` (a path, or
``@name`` in the abstract namespace). Outside systemd the variable is unset and nothing is sent,
so the same run works in a terminal, under a container supervisor or as a service.

The watchdog pings (``WATCHDOG=1``) only while the pipeline moves: its batcher goes round at
least every 0.1 s whatever the cameras do, so a batcher that has not gone round for half the
watchdog interval is wedged (a GPU call that never returns, a deadlock). Pings then stop and
systemd restarts the service (``Restart=on-failure``), which is the one cure for a wedged GPU.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0  # STATUS= when systemd watches no watchdog
LOG_EVERY_S = 60.0  # the summary as a log line, when no live table shows it


class Notifier:
    """Sends sd_notify datagrams to ``$NOTIFY_SOCKET``; does nothing when it is unset.

    Example:
        >>> Notifier({}).send(READY=1)  # not under systemd: a no-op
        False
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # the abstract namespace: a leading NUL byte
            address = "\0" + address[1:]
        self._address = address if address.startswith(("/", "\0")) else None
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self.watchdog_s = _watchdog_seconds(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, **fields: object) -> bool:
        """One datagram of ``KEY=value`` lines; True if it was sent. Never raises: a service
        manager that went away must not take the pipeline with it."""
        if self._address is None:
            return False
        payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.sendto(payload, self._address)
                return True
            except OSError as err:
                logger.debug("sd_notify to %r failed: %s", self._address, err)
                return False

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    """``WatchdogSec`` of the unit (``$WATCHDOG_USEC``) when it is meant for this process."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1e6


def summary_line(snapshot: dict) -> str:
    """``2/3 streams live, 23.9 frames/s, 1 reconnecting``: what STATUS= and the journal show."""
    rows = snapshot["streams"]
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    fps = sum(row["fps"] for row in rows)
    others = ", ".join(f"{n} {state}" for state, n in sorted(states.items()) if state != "live")
    text = f"{states.get('live', 0)}/{len(rows)} streams live, {fps:.1f} frames/s"
    text = f"{text}, {others}" if others else text
    shard = snapshot.get("pipeline", {}).get("shard")
    return f"shard {shard['index']}/{shard['count']}: {text}" if shard else text


class Watchdog:
    """A thread that pings the watchdog while ``stalled_s()`` stays under half the interval,
    sends STATUS= with ``summary_line`` and, without a live table, logs it every minute.

    Before :meth:`running` (engine load, a TensorRT build) it pings without looking: nothing
    can be wedged that has not started, and ``TimeoutStartSec`` bounds a start that hangs.
    """

    def __init__(
        self,
        notifier: Notifier,
        log_summary: bool,
        log_every_s: float = LOG_EVERY_S,
    ) -> None:
        self._notifier = notifier
        self._log_summary = log_summary
        self._log_every_s = log_every_s
        watchdog_s = notifier.watchdog_s
        self._interval_s = watchdog_s / 2 if watchdog_s else STATUS_EVERY_S
        self.wedged_after_s = watchdog_s / 2 if watchdog_s else None
        self._stalled_s: Callable[[], float] | None = None
        self._snapshot: Callable[[], dict] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._wedged = False

    def start(self) -> None:
        if self._notifier.enabled or self._log_summary:
            self._thread.start()

    def running(self, stalled_s: Callable[[], float], snapshot: Callable[[], dict]) -> None:
        """The pipeline runs: judge it by ``stalled_s()`` from now on."""
        self._snapshot, self._stalled_s = snapshot, stalled_s

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(2.0)

    def _run(self) -> None:
        next_log_s = time.monotonic() + self._log_every_s
        while True:
            self.beat()
            if self._log_summary and self._snapshot and time.monotonic() >= next_log_s:
                next_log_s += self._log_every_s
                logger.info("status: %s", summary_line(self._snapshot()))
            if self._stop.wait(self._interval_s):
                return

    def beat(self) -> None:
        """One round: a ping and a STATUS while healthy, a STATUS saying why not otherwise."""
        if self._stalled_s is None or self._snapshot is None:
            self._ping("starting: loading the model and engine")
            return
        stalled_s = self._stalled_s()
        if self.wedged_after_s is not None and stalled_s >= self.wedged_after_s:
            reason = f"wedged: no batch loop for {stalled_s:.0f} s; watchdog pings stopped"
            if not self._wedged:
                logger.error("pipeline %s (systemd will restart the service)", reason)
            self._wedged = True
            self._notifier.send(STATUS=reason)
            return
        if self._wedged:
            logger.warning("pipeline moves again after %.0f s; watchdog pings resume", stalled_s)
            self._wedged = False
        self._ping(summary_line(self._snapshot()))

    def _ping(self, status: str) -> None:
        if self.wedged_after_s is not None:
            self._notifier.send(WATCHDOG=1, STATUS=status)
        else:
            self._notifier.send(STATUS=status)


def journal_stderr(environ: Mapping[str, str] | None = None) -> bool:
    """Whether stderr is systemd's journal stream (``$JOURNAL_STREAM`` is its device:inode)."""
    env = os.environ if environ is None else environ
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return f"{stat.st_dev}:{stat.st_ino}" == f"{device}:{inode}"


class JournalFormatter(logging.Formatter):
    """``<3>streams.x: message``: journald reads the ``<N>`` syslog priority (so
    ``journalctl -p warning`` works) and adds its own timestamp."""

    PRIORITY = {
        logging.CRITICAL: 2,
        logging.ERROR: 3,
        logging.WARNING: 4,
        logging.INFO: 6,
        logging.DEBUG: 7,
    }

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = self.PRIORITY.get(record.levelno, 6)
        # Every line of a multi-line record (a traceback) carries the priority.
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())
