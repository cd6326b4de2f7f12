"""Per-thread CPU use of this process, for benchmarks: which thread is the bottleneck?

Why: the pipeline is many Python threads sharing one GIL. A thread near 100 % of a core, or
the whole process near 100 % with many threads, says "per-frame Python"; a process far below
that says the wait is elsewhere (GPU, NVDEC, locks). Linux only (reads ``/proc``); elsewhere
it reports nothing.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import defaultdict
from pathlib import Path

_TASKS = Path("/proc/self/task")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _thread_ticks() -> dict[int, int]:
    """Native thread id -> user + system CPU ticks so far."""
    ticks = {}
    for task in _TASKS.iterdir() if _TASKS.is_dir() else ():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks[int(task.name)] = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks


def _group(name: str) -> str:
    """``capture-cam-17`` -> ``capture-*``: a hundred capture threads are one line."""
    return re.sub(r"^(capture|nvdec|decode)-.*$", r"\1-*", name)


def _grouped(ticks_by_tid: dict[int, int]) -> dict[str, float]:
    """Native thread id -> ticks, as CPU seconds per thread-name group."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    groups: dict[str, float] = defaultdict(float)
    for tid, ticks in ticks_by_tid.items():
        groups[_group(names.get(tid, "other (native)"))] += ticks / _TICKS_PER_S
    return dict(groups)


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of this process's live threads, grouped by name."""
    return _grouped(_thread_ticks())


class ThreadCpu:
    """CPU seconds per thread (grouped by name) between ``__init__`` and ``stop()``."""

    def __init__(self) -> None:
        self._start_s = time.monotonic()
        self._start = _thread_ticks()

    def stop(self) -> dict:
        """``{"process_cpu_pct": ..., "threads_cpu_pct": {group: pct, ...}}`` (100 = a core)."""
        elapsed_s = max(time.monotonic() - self._start_s, 1e-6)
        used = {tid: ticks - self._start.get(tid, 0) for tid, ticks in _thread_ticks().items()}
        pct = {
            name: round(100.0 * s / elapsed_s, 1)
            for name, s in sorted(_grouped(used).items(), key=lambda item: -item[1])
            if s > 0
        }
        return {"process_cpu_pct": round(sum(pct.values()), 1), "threads_cpu_pct": pct}
