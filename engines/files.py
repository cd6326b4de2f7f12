"""File helpers every layer uses: the cache root, a file's SHA-256 (hashed once), atomic writes.

Why here: ``engines`` is the bottom layer (``processors`` and ``streams`` build on it), and the
engine cache, the FP16 converter and the asset cache all need the same two things: a digest
that is not recomputed for a big unchanged file, and a write that a crash or a concurrent
process never sees half done.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_sha_memo: dict[tuple, str] = {}


def cache_root() -> Path:
    """``$STREAMS_CACHE``, else ``~/.cache/streams``: the sample assets and (in ``engines/``)
    the built TensorRT engines live under it, so one variable moves both."""
    env = os.environ.get("STREAMS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "streams"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, inode, size, mtime); raises OSError."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _sha_memo:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        _sha_memo[key] = digest.hexdigest()
    return _sha_memo[key]


@contextmanager
def atomic_path(dest: Path, mode: int = 0o644) -> Iterator[Path]:
    """A temporary path beside ``dest`` to write; renamed over ``dest`` when the block ends
    without an exception, removed otherwise. ``mode``: the file's permissions (mkstemp makes
    0600; caches may be shared read-only)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write(dest: Path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``dest`` atomically; ``durable`` also fsyncs before the rename."""
    with atomic_path(dest) as tmp, tmp.open("wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())


@contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    Why: two processes that would build the same cached file (workers of two identical GPUs
    starting together) must not both build it; the second waits here, then finds the file.
    ``on_wait`` is called once if the lock is held by someone else (to say so in the log).
    The kernel drops the lock when its holder dies, so a crashed build never blocks later ones.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
