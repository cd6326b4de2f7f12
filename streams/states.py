"""A stream's states and the moves between them: one vocabulary for the capture workers, the
pipeline, the supervisor, the live table, ``/metrics`` and the ``status`` messages.

``starting`` is only ever seen in snapshots (nothing has been announced yet); every other
state is published. ``ended`` and ``failed`` are terminal for a pipeline; only a worker
process that is restarted (``reconnecting``) brings its streams back from them.
"""

from __future__ import annotations

from enum import Enum


class StreamState(str, Enum):
    """What a stream is doing now (a ``str``, so it compares and serialises as its value)."""

    STARTING = "starting"
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    @property
    def terminal(self) -> bool:
        return self in (StreamState.ENDED, StreamState.FAILED)


_S = StreamState
_RUNNING = {_S.CONNECTING, _S.LIVE, _S.RECONNECTING, _S.FAILED, _S.ENDED}
TRANSITIONS: dict[StreamState, frozenset[StreamState]] = {
    # connecting -> connecting, live -> connecting/live: a stream NVDEC gave up on starts
    # again on the CPU decoder and announces itself again.
    _S.STARTING: frozenset(_RUNNING - {_S.LIVE}),
    _S.CONNECTING: frozenset(_RUNNING),
    _S.LIVE: frozenset(_RUNNING),
    _S.RECONNECTING: frozenset(_RUNNING),
    _S.ENDED: frozenset({_S.RECONNECTING}),  # its worker process died and is restarted
    _S.FAILED: frozenset({_S.RECONNECTING}),
}
PUBLISHED = tuple(s.value for s in StreamState if s is not StreamState.STARTING)


class BadTransition(ValueError):
    """A state change the lifecycle does not have (a bug in whoever announced it)."""


def advance(current: StreamState | str, new: StreamState | str) -> StreamState:
    """``new`` as a StreamState, if a stream in ``current`` may move there."""
    current, new = StreamState(current), StreamState(new)
    if new not in TRANSITIONS[current]:
        raise BadTransition(f"a stream cannot go from {current.value} to {new.value}")
    return new
