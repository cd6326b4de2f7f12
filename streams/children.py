"""Signals for the child processes (workers, bridges): the group-wide ones are the parent's.

A Ctrl-C (SIGINT) and a terminal hangup (SIGHUP) reach every process of the foreground
process group, children included. The parent decides what they mean (a drain; a reload), so
a child must not die of them: a hangup used to kill every worker and multiprocessing's
resource tracker (which then printed tracebacks), and the supervisor restarted the workers.
"""

from __future__ import annotations

import signal
import threading


def ignore_group_signals() -> None:
    """In a child process, first thing: SIGINT and SIGHUP are left to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now, with SIGHUP ignored, which the tracker
    inherits (it ignores SIGINT itself); later ``spawn`` children reuse it. Only the main
    thread may change a signal's handling; elsewhere the tracker starts as it would."""
    from multiprocessing import resource_tracker

    if threading.current_thread() is not threading.main_thread():
        resource_tracker.ensure_running()
        return
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, previous)
