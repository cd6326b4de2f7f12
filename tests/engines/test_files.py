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
