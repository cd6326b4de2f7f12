"""How many NVDEC decoder sessions this process holds now (``stats`` and ``/metrics``).

Why count them ourselves: nvidia-smi and NVML report the decoders' load, not their sessions,
and a session a removed stream left open is the leak users of other products report (sources
that never free their decoder). Every ``NvdecReader`` counts itself in once its decoder
exists and out when it is closed; kept apart from ``nvdec.py`` so that reading the figure
imports no CUDA.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_open = 0


def opened() -> None:
    """A decoder was created."""
    global _open
    with _lock:
        _open += 1


def closed() -> None:
    """A decoder counted by ``opened`` was freed."""
    global _open
    with _lock:
        _open -= 1


def open_now() -> int:
    """Decoder sessions open in this process."""
    return _open
