"""The directory snapshots and clips go to, kept under a size cap: after each new file the
oldest files (by modification time) are removed until the total fits.

The directory is read again at most every :data:`RESCAN_S` (worker processes each have a
store over the same directory, for their own streams: each sees the others' files from then
on), and between reads only this store's own files are added up."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

SUFFIXES = (".jpg", ".mp4")  # only what the recorder writes is ever removed
RESCAN_S = 5.0


class Store:
    """``directory`` holding at most ``max_bytes`` of ``.jpg`` and ``.mp4`` files (its
    subdirectories, one per stream, included). Used by one thread."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self.removed = 0  # files removed to stay under the cap
        self._files: dict[Path, tuple[float, int]] | None = None  # path -> (mtime, size)
        self._scanned_mono_s = float("-inf")

    def stream_dir(self, stream_id: str) -> Path:
        """The stream's directory, created if missing (OSError if it cannot be)."""
        path = self.directory / stream_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _scan(self) -> dict[Path, tuple[float, int]]:
        files: dict[Path, tuple[float, int]] = {}
        for root, _, names in os.walk(self.directory):
            for name in names:
                if name.endswith(SUFFIXES):
                    path = Path(root) / name
                    try:
                        info = path.stat()
                    except OSError:
                        continue
                    files[path] = (info.st_mtime, info.st_size)
        return files

    @property
    def total_bytes(self) -> int:
        if self._files is None:
            self._files = self._scan()
        return sum(size for _, size in self._files.values())

    def added(self, path: Path) -> list[Path]:
        """Count a file just written; remove the oldest until the total fits (never the new
        file itself). Returns what was removed."""
        now = time.monotonic()
        if self._files is None or now - self._scanned_mono_s >= RESCAN_S:
            self._files = self._scan()  # files of an earlier run, and of other workers
            self._scanned_mono_s = now
        info = path.stat()
        self._files[path] = (info.st_mtime, info.st_size)
        total = sum(size for _, size in self._files.values())
        removed: list[Path] = []
        for old in sorted(self._files, key=lambda p: self._files[p][0]):
            if total <= self.max_bytes:
                break
            if old == path:
                continue
            try:
                old.unlink()
            except FileNotFoundError:
                pass
            except OSError as err:
                logger.warning("record: cannot remove %s to keep the size cap: %s", old, err)
                continue
            total -= self._files.pop(old)[1]
            removed.append(old)
        self.removed += len(removed)
        return removed
