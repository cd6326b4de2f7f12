"""The shared file helpers: the cache root, hashing once, writes that are never half done."""

import hashlib
import os

import pytest

from engines.files import atomic_path, atomic_write, cache_root, file_sha256
from engines.options import EngineOptions
from streams.assets import default_cache_dir
from streams.config import load_config


def test_streams_cache_moves_the_assets_and_the_engine_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMS_CACHE", str(tmp_path / "c"))
    assert cache_root() == default_cache_dir() == tmp_path / "c"
    assert EngineOptions().cache_dir == tmp_path / "c" / "engines"
    config = tmp_path / "config.yaml"
    config.write_text("streams: [{id: a, url: sample:bikes.mp4}]\n")
    assert load_config(config).engine.cache_dir == tmp_path / "c" / "engines"
    monkeypatch.delenv("STREAMS_CACHE")
    assert EngineOptions().cache_dir == cache_root() / "engines"
    assert (
        cache_root()
        == default_cache_dir()
        == __import__("pathlib").Path.home() / ".cache" / "streams"
    )


def test_sha256_is_the_files_and_follows_a_rewrite(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"one")
    assert file_sha256(path) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"two, longer")  # new size (and mtime): hashed again, not remembered
    assert file_sha256(path) == hashlib.sha256(b"two, longer").hexdigest()
    with pytest.raises(OSError):
        file_sha256(tmp_path / "absent")


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    dest = tmp_path / "sub" / "engine.plan"
    atomic_write(dest, b"good", durable=True)
    assert dest.read_bytes() == b"good" and oct(dest.stat().st_mode & 0o777) == "0o644"
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the build died")
    assert dest.read_bytes() == b"good"
    assert os.listdir(dest.parent) == ["engine.plan"]


def _build_once(target: str, lock: str, marks: str, waits: str) -> None:
    """What build_or_load does around a build: look, lock, look again, build."""
    import pathlib
    import time

    from engines.files import file_lock

    target_path = pathlib.Path(target)
    if target_path.exists():
        return
    with file_lock(pathlib.Path(lock), lambda: (pathlib.Path(waits) / str(os.getpid())).touch()):
        if target_path.exists():
            return
        (pathlib.Path(marks) / str(os.getpid())).touch()
        time.sleep(0.5)  # a build takes a while: the others arrive while it runs
        atomic_write(target_path, b"engine")


def test_a_file_lock_lets_one_of_several_processes_build_and_the_rest_wait(tmp_path):
    import multiprocessing

    marks, waits = tmp_path / "built", tmp_path / "waited"
    marks.mkdir()
    waits.mkdir()
    args = (str(tmp_path / "x.engine"), str(tmp_path / "x.engine.lock"), str(marks), str(waits))
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_build_once, args=args) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0] * 4
    assert len(list(marks.iterdir())) == 1  # built once
    assert len(list(waits.iterdir())) >= 1  # and someone waited for it
    assert (tmp_path / "x.engine").read_bytes() == b"engine"


def test_a_file_lock_is_released_when_its_holder_dies(tmp_path):
    import subprocess
    import sys
    import time

    from engines.files import file_lock

    lock = tmp_path / "y.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from engines.files import file_lock\n"
            f"with file_lock(Path({str(lock)!r})):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        waited = []
        holder.kill()  # a build that crashed
        holder.wait(10)
        started = time.monotonic()
        with file_lock(lock, lambda: waited.append(True)):
            pass
        assert time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()
