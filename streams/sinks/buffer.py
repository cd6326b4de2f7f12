"""A bounded FIFO between a bridge's ZeroMQ reader and its broker sender.

Full, it drops the oldest message to take the newest (a dashboard wants now, not a minute
ago) and counts it; the reader never waits, so the bridge drains the SUB socket at once and
the pipeline's publisher never sees a slow subscriber.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Buffer(Generic[Item]):
    """At most ``bound`` items; ``dropped`` counts the oldest ones pushed out."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.dropped = 0
        self._items: deque[Item] = deque()
        self._ready = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def put_many(self, items: list[Item]) -> None:
        """Append; past the bound drop from the front (the oldest) and count them."""
        with self._ready:
            self._items.extend(items)
            excess = len(self._items) - self.bound
            for _ in range(max(0, excess)):
                self._items.popleft()
            self.dropped += max(0, excess)
            self._ready.notify()

    def put_back(self, items: list[Item]) -> None:
        """Return a batch that could not be sent to the front, as far as the bound allows
        (what does not fit is the oldest of it, dropped and counted)."""
        with self._ready:
            room = self.bound - len(self._items)
            keep = items[len(items) - room :] if room < len(items) else items
            self.dropped += len(items) - len(keep)
            self._items.extendleft(reversed(keep))

    def take(self, most: int, timeout_s: float) -> list[Item]:
        """Up to ``most`` items, oldest first; waits up to ``timeout_s`` for the first."""
        with self._ready:
            if not self._items:
                self._ready.wait(timeout_s)
            count = min(most, len(self._items))
            return [self._items.popleft() for _ in range(count)]
