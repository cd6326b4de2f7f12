"""What a config reload (SIGHUP) changes: the streams added, removed and changed, or why not.

Only ``streams:`` applies live: each stream is its own capture worker, so one can start or
stop without touching the others. Everything else is shared by every stream (the model and
engine, the publisher's endpoint, batching, capture timeouts, metrics, worker processes) and
is refused, naming the keys, so the running config stays as it is; restarting the service
applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass

from streams.config import Config, StreamConfig
from streams.errors import StreamsError

LIVE_SECTIONS = ("streams",)


class ReloadRefused(StreamsError):
    """The new config changes what cannot change while running."""


@dataclass(frozen=True)
class ReloadPlan:
    """Stream ids, in the new config's order (``removed``: the old one's)."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def describe(self) -> str:
        """``added c; removed b; restarted a (url)``, or ``no stream changed``."""
        parts = [
            f"{what} {', '.join(ids)}"
            for what, ids in (
                ("added", self.added),
                ("removed", self.removed),
                ("restarted", self.changed),
            )
            if ids
        ]
        return "; ".join(parts) or "no stream changed"


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """The stream changes from ``old`` to ``new``; raises ReloadRefused if anything else
    differs (every differing key named)."""
    fixed = [
        key
        for section in fields(Config)
        if section.name not in LIVE_SECTIONS
        for key in _differences(
            getattr(old, section.name), getattr(new, section.name), section.name
        )
    ]
    if fixed:
        raise ReloadRefused(
            f"{', '.join(fixed)} changed, which cannot apply while running (only streams: "
            "does); restart the service to apply it"
        )
    before = {s.id: s for s in old.streams}
    after = {s.id: s for s in new.streams}
    return ReloadPlan(
        added=tuple(i for i in after if i not in before),
        removed=tuple(i for i in before if i not in after),
        changed=tuple(i for i in after if i in before and before[i] != after[i]),
    )


def stream_differences(old: StreamConfig, new: StreamConfig) -> list[str]:
    """The keys of one stream that differ (``url``, ``fps``), for the log."""
    return [f.name for f in fields(StreamConfig) if getattr(old, f.name) != getattr(new, f.name)]


def _differences(old: object, new: object, where: str) -> list[str]:
    if old == new:
        return []
    if is_dataclass(old) and is_dataclass(new) and type(old) is type(new):
        return [
            key
            for f in fields(old)
            for key in _differences(getattr(old, f.name), getattr(new, f.name), f"{where}.{f.name}")
        ]
    return [where]
