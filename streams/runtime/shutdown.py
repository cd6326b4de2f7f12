"""Leaving the process when a capture thread is stuck in a network call."""

from __future__ import annotations

import logging
import os
import sys
import threading


def exit_process(code: int) -> int:
    """The process's exit code, leaving at once if a capture thread is still stuck.

    Why: a camera that accepts the connection and then says nothing keeps its capture thread
    inside FFmpeg (``av.open`` waits up to ``capture.open_timeout_s``). The pipeline stops
    without it, but tearing the interpreter down under a thread still running native code can
    crash the process (SIGSEGV, seen with PyAV 18 in about one exit in three) after a clean
    drain. Everything is already flushed and closed here, so skip the teardown instead.
    """
    stuck = [
        t.name for t in threading.enumerate() if t.name.startswith("capture-") and t.is_alive()
    ]
    if not stuck:
        return code
    logging.getLogger(__name__).info(
        "leaving %d capture thread(s) still waiting on the network (%s)",
        len(stuck),
        ", ".join(stuck[:5]),
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
