"""SIGHUP: read the config file again and apply its streams to the running pipeline.

The signal handler only sets an event; the file is read and applied on this module's thread,
so a slow reload (a camera's worker taking a second to leave) never runs inside a handler. A
new config that is invalid, or that changes more than ``streams:``, is refused with one log
line and the running config stays (``streams/runtime/reload.py`` says what applies live).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from streams.errors import USER_ERRORS, ConfigError

if TYPE_CHECKING:
    from streams.cli.systemd import Notifier
    from streams.config import ShardConfig
    from streams.runtime.runnable import Runnable

logger = logging.getLogger("streams")


class Reloader:
    """Applies ``path`` to ``run`` each time ``wanted`` is set (by the SIGHUP handler; one
    that came while the pipeline was starting is applied once it runs)."""

    def __init__(
        self,
        path: Path,
        run: Runnable,
        notifier: Notifier,
        wanted: threading.Event,
        lock: threading.Lock | None = None,
        shard: ShardConfig | None = None,
    ) -> None:
        self._path = path
        self._lock = lock or threading.Lock()  # the HTTP API's changes take it too
        self._shard = shard  # run --shard: the new file's streams are cut to this node's share
        self._run = run
        self._notifier = notifier
        self._wanted = wanted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reload", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()
        if self._thread.ident is not None:
            self._thread.join(5.0)

    def _loop(self) -> None:
        while True:
            self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()
            self.reload()

    def reload(self) -> bool:
        """Read and apply the file once; True if it was applied. Never raises."""
        from streams.config import load_config
        from streams.scale.cluster import for_shard

        # systemd (Type=notify with ExecReload) shows "reloading" until READY=1 again.
        self._notifier.send(RELOADING=1, MONOTONIC_USEC=time.monotonic_ns() // 1000)
        applied = False
        try:
            config = for_shard(load_config(self._path), self._shard)
            with self._lock:
                plan = self._run.reload(config)
            logger.info("reloaded %s: %s", self._path, plan.describe())
            applied = True
        except ConfigError as err:
            logger.error("reload refused, the running config stays: config error: %s", err)
        except USER_ERRORS as err:  # ReloadRefused, a sample that cannot be fetched
            logger.error("reload refused, the running config stays: %s", err)
        except Exception:  # a bug: the pipeline keeps running what it runs
            logger.exception("reload failed; the running config stays")
        self._notifier.send(READY=1, STATUS=("reloaded" if applied else "reload refused"))
        return applied
