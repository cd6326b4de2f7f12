from pathlib import Path

import pytest
import yaml

from streams.config import load_config, parse_config
from streams.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def minimal(**overrides):
    raw = {"streams": [{"id": "cam1", "url": "rtsp://camera.local/live"}]}
    raw.update(overrides)
    return raw


def test_default_config_loads():
    config = load_config(REPO / "config.yaml")
    assert [s.id for s in config.streams] == ["bikes", "carphone"]
    assert config.engine.backend == "auto"
    assert config.publish.endpoint == "tcp://127.0.0.1:5555"
    assert all(s.loop for s in config.streams)


def test_defaults_fill_missing_sections():
    config = parse_config(minimal())
    assert config.engine.max_batch == 8
    assert config.batch.max_wait_ms == 10
    assert config.streams[0].is_file is False


@pytest.mark.parametrize(
    "raw, message",
    [
        ({}, r"^streams: missing"),
        ({"streams": []}, r"^streams: expected a non-empty list"),
        (minimal(bogus=1), r"^bogus: unknown key"),
        (
            {"streams": [{"id": "a", "url": "rtsp://h/x", "colour": "red"}]},
            r"^streams\[0\]\.colour: unknown key",
        ),
        ({"streams": [{"url": "rtsp://h/x"}]}, r"^streams\[0\]\.id: missing"),
        ({"streams": [{"id": "a b", "url": "rtsp://h/x"}]}, r"^streams\[0\]\.id: expected"),
        (
            {"streams": [{"id": "a", "url": "rtsp://h/x"}, {"id": "a", "url": "rtsp://h/y"}]},
            r"^streams\[1\]\.id: duplicate",
        ),
        (
            {"streams": [{"id": "a", "url": "rtsp://h/x"}, {"id": "b", "url": "rtsp:///nohost"}]},
            r"^streams\[1\]\.url: .* has no host",
        ),
        ({"streams": [{"id": "a", "url": "rtsp://h:99999/x"}]}, r"^streams\[0\]\.url: .* bad port"),
        (
            {"streams": [{"id": "a", "url": "gopher://h/x"}]},
            r"^streams\[0\]\.url: unsupported URL scheme 'gopher'",
        ),
        (
            {"streams": [{"id": "a", "url": "/no/such/file.mp4"}]},
            r"^streams\[0\]\.url: file not found",
        ),
        (
            {"streams": [{"id": "a", "url": "sample:nope.mp4"}]},
            r"^streams\[0\]\.url: unknown sample",
        ),
        (
            {"streams": [{"id": "a", "url": "rtsp://h/x", "fps": "fast"}]},
            r"^streams\[0\]\.fps: expected a number",
        ),
        (
            {"streams": [{"id": "a", "url": "rtsp://h/x", "fps": 0}]},
            r"^streams\[0\]\.fps: 0 is out of range",
        ),
        (
            {"streams": [{"id": "a", "url": "rtsp://h/x", "loop": "yes"}]},
            r"^streams\[0\]\.loop: expected true or false",
        ),
        (
            {"streams": [{"id": "a", "url": "rtsp://h/x", "decoder": "magic"}]},
            r"^streams\[0\]\.decoder: expected one of",
        ),
        (minimal(engine={"max_batch": 0}), r"^engine\.max_batch: 0 is out of range"),
        (minimal(engine={"max_batch": True}), r"^engine\.max_batch: expected an integer"),
        (
            minimal(engine={"backend": "torch"}),
            r"^engine\.backend: expected one of auto, onnxruntime, tensorrt",
        ),
        (minimal(engine={"device": "gpu0"}), r"^engine\.device: expected 'cpu' or 'cuda:N'"),
        (minimal(engine={"max_batch": 4, "opt_batch": 8}), r"^engine\.opt_batch: 8 exceeds"),
        (minimal(model={"path": "/no/model.onnx"}), r"^model\.path: file not found"),
        (minimal(model={"path": "builtin:yolov9"}), r"^model\.path: unknown built-in"),
        (minimal(model={"conf_threshold": 1.5}), r"^model\.conf_threshold: 1.5 is out of range"),
        (
            minimal(publish={"endpoint": "http://x"}),
            r"^publish\.endpoint: expected a ZeroMQ endpoint",
        ),
        (minimal(metrics={"port": 70000}), r"^metrics\.port: 70000 is out of range"),
        (minimal(batch=[1, 2]), r"^batch: expected a mapping"),
        ([1, 2], r"^config: expected a mapping"),
    ],
)
def test_invalid_values_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_env_interpolation_with_default_and_missing():
    raw = {
        "streams": [{"id": "cam", "url": "rtsp://admin:${CAM_PASS}@cam.local/live"}],
        "publish": {"endpoint": "tcp://127.0.0.1:${PORT:-6000}"},
    }
    config = parse_config(raw, environ={"CAM_PASS": "s3cret"})
    assert config.streams[0].url == "rtsp://admin:s3cret@cam.local/live"
    assert config.publish.endpoint == "tcp://127.0.0.1:6000"
    with pytest.raises(
        ConfigError, match=r"^streams\[0\]\.url: environment variable \$\{CAM_PASS\} is not set"
    ):
        parse_config(raw, environ={})


def test_error_messages_never_show_credentials():
    raw = {"streams": [{"id": "cam", "url": "rtsp://admin:hunter2@:99/live"}]}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert "hunter2" not in str(info.value)
    assert "***@" in str(info.value)


def test_relative_paths_resolve_from_the_config_file(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"\0")
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump({"streams": [{"id": "a", "url": "clips/a.mp4"}]})
    )
    config = load_config(tmp_path / "c.yaml")
    assert config.streams[0].url == str(tmp_path / "clips" / "a.mp4")
    assert config.streams[0].is_file


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("streams: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


# --- issue 11: config that cannot silently lose a camera --------------------------------------


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_duplicate_top_level_key_names_the_key_and_lines(tmp_path):
    path = write(
        tmp_path,
        "streams:\n  - {id: a, url: rtsp://h/a}\nstreams:\n  - {id: b, url: rtsp://h/b}\n",
    )
    with pytest.raises(ConfigError, match=r"^streams: duplicate key 'streams' at line 3"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"first at line 1"):
        load_config(path)


def test_duplicate_key_inside_a_stream(tmp_path):
    path = write(
        tmp_path,
        "streams:\n  - id: a\n    url: rtsp://h/a\n    url: rtsp://h/b\n",
    )
    with pytest.raises(ConfigError, match=r"^streams\[0\]\.url: duplicate key 'url' at line 4"):
        load_config(path)


def test_merge_keys_and_anchors_still_load(tmp_path):
    path = write(
        tmp_path,
        "streams:\n  - &cam {id: a, url: rtsp://h/a}\n  - {<<: *cam, id: b}\n",
    )
    config = load_config(path)
    assert [s.id for s in config.streams] == ["a", "b"]


@pytest.mark.parametrize(
    "endpoint, message",
    [
        ("tcp://127.0.0.1:70000", r"port 70000 is out of range 1\.\.65535"),
        ("tcp://127.0.0.1:0", r"port 0 is out of range"),
        ("tcp://999.1.1.1:5555", r"'999\.1\.1\.1' is not a valid IP address"),
        ("tcp://bad_host!:5555", r"is not an IP address, '\*' or a host name"),
        ("ipc:///nonexistent/dir/sock", r"directory /nonexistent/dir does not exist"),
        ("inproc://x", r"inproc:// .*no subscriber"),
    ],
)
def test_publish_endpoint_checked_up_front(endpoint, message):
    with pytest.raises(ConfigError, match=r"^publish\.endpoint: .*" + message):
        parse_config(minimal(publish={"endpoint": endpoint}))


@pytest.mark.parametrize(
    "endpoint",
    ["tcp://127.0.0.1:5555", "tcp://*:5555", "tcp://localhost:*", "tcp://cam-host.lan:1"],
)
def test_good_publish_endpoints(endpoint, tmp_path):
    assert parse_config(minimal(publish={"endpoint": endpoint})).publish.endpoint == endpoint
    ipc = f"ipc://{tmp_path}/bus.sock"
    assert parse_config(minimal(publish={"endpoint": ipc})).publish.endpoint == ipc


@pytest.mark.parametrize(
    "data",
    [
        "streams: []\n".encode("utf-16"),
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00\xff\xfe\x80\x81",
    ],
)
def test_non_utf8_config_is_refused(tmp_path, data):
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=r"not a UTF-8 text YAML file"):
        load_config(path)


def test_directory_as_model_path_or_url_says_directory(tmp_path):
    with pytest.raises(ConfigError, match=r"^model\.path: .* is a directory"):
        parse_config(minimal(model={"path": str(tmp_path)}))
    with pytest.raises(ConfigError, match=r"^model\.labels: .* is a directory"):
        parse_config(minimal(model={"labels": str(tmp_path)}))
    with pytest.raises(ConfigError, match=r"^streams\[0\]\.url: .* is a directory"):
        parse_config({"streams": [{"id": "a", "url": str(tmp_path)}]})
