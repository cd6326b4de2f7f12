"""What a config reload (SIGHUP) changes: the streams added, removed and changed, or why not.

Only ``streams:`` applies live: each stream is its own capture worker, so one can start or
stop without touching the others; a stream whose ``fps``, ``zones`` or ``lines`` alone
changed keeps its worker and changes in place. Everything else is shared by every stream
(the model and engine, the publisher's endpoint, batching, capture timeouts, metrics, http,
worker processes) and is refused, naming the keys, so the running config stays as it is;
restarting the service applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass

from streams.config import Config, StreamConfig
from streams.errors import StreamsError

LIVE_SECTIONS = ("streams",)
# A stream whose only differences are these keys changes in place: its capture worker, its
# decoder session and its tracks carry on (the fps cap is the worker's clock; zones and
# lines are the completer's, read from the config in force).
IN_PLACE = frozenset({"fps", "zones", "lines"})


class ReloadRefused(StreamsError):
    """The new config changes what cannot change while running."""


@dataclass(frozen=True)
class ReloadPlan:
    """Stream ids, in the new config's order (``removed``: the old one's). ``changed``
    streams restart; ``retuned`` ones (only ``IN_PLACE`` keys differ) change in place."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    retuned: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.retuned)

    def describe(self) -> str:
        """``added c; removed b; restarted a; changed in place d``, or ``no stream
        changed``."""
        parts = [
            f"{what} {', '.join(ids)}"
            for what, ids in (
                ("added", self.added),
                ("removed", self.removed),
                ("restarted", self.changed),
                ("changed in place", self.retuned),
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
    differing = [i for i in after if i in before and before[i] != after[i]]
    in_place = {i for i in differing if set(stream_differences(before[i], after[i])) <= IN_PLACE}
    return ReloadPlan(
        added=tuple(i for i in after if i not in before),
        removed=tuple(i for i in before if i not in after),
        changed=tuple(i for i in differing if i not in in_place),
        retuned=tuple(i for i in differing if i in in_place),
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
