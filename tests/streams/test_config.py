import re
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
        # measured on no GPU yet (engines/int8_tail.py): an option of the benchmarks only
        (minimal(engine={"keep_tail_fp16": True}), r"^engine\.keep_tail_fp16: unknown key"),
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


# --- zones and lines ---------------------------------------------------------------------------

SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


def tracked(**keys) -> dict:
    """Two streams, the second tracked with ``keys`` (zones, lines): errors name streams[1]."""
    return {
        "streams": [
            {"id": "a", "url": "rtsp://h/a"},
            {"id": "b", "url": "rtsp://h/b", "tracking": {"enabled": True}, **keys},
        ]
    }


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            tracked(zones=[{"name": "z", "points": [[0, 0], [10, 0]]}]),
            r"^streams\[1\]\.zones\[0\]\.points: a zone needs at least 3 points, got 2$",
        ),
        (
            tracked(
                zones=[
                    {"name": "ok", "points": SQUARE},
                    {"name": "bow", "points": [[0, 0], [10, 10], [10, 0], [0, 10]]},
                ]
            ),
            r"^streams\[1\]\.zones\[1\]\.points: self-intersecting \(edge 0 crosses edge 2\); "
            r"list the points in order around the area$",
        ),
        (
            tracked(zones=[{"name": "z", "points": [[0, 0], [10, 0], [10, 0], [0, 10]]}]),
            r"^streams\[1\]\.zones\[0\]\.points: point 1 repeats point 2$",
        ),
        (
            tracked(lines=[{"name": "l", "a": [5, 5], "b": [5, 5]}]),
            r"^streams\[1\]\.lines\[0\]\.b: a and b are the same point \[5\.0, 5\.0\]$",
        ),
        (
            tracked(
                zones=[{"name": "door", "points": SQUARE}],
                lines=[{"name": "door", "a": [0, 0], "b": [9, 9]}],
            ),
            r"^streams\[1\]\.lines\[0\]\.name: 'door' is also streams\[1\]\.zones\[0\]; zone and "
            r"line names must be unique within a stream",
        ),
        (
            tracked(zones=[{"name": "z", "points": SQUARE}, {"name": "z", "points": SQUARE}]),
            r"^streams\[1\]\.zones\[1\]\.name: 'z' is also streams\[1\]\.zones\[0\]",
        ),
        (
            tracked(
                zones=[{"name": "z", "units": "fraction", "points": [[0, 0], [1.5, 0], [1, 1]]}]
            ),
            r"^streams\[1\]\.zones\[0\]\.points\[1\]: \[1\.5, 0\] is outside \[0, 1\] \(units: "
            r"fraction",
        ),
        (
            tracked(lines=[{"name": "l", "units": "fraction", "a": [0, 0], "b": [0.5, -0.1]}]),
            r"^streams\[1\]\.lines\[0\]\.b: \[0\.5, -0\.1\] is outside \[0, 1\]",
        ),
        (
            tracked(zones=[{"name": "z", "points": [[0, 0], [10, -1], [10, 10]]}]),
            r"^streams\[1\]\.zones\[0\]\.points\[1\]: \[10, -1\] is negative; pixels count from "
            r"the frame's top left corner",
        ),
        (
            tracked(zones=[{"name": "z", "points": SQUARE, "classes": ["person", "persn"]}]),
            r"^streams\[1\]\.zones\[0\]\.classes\[1\]: unknown class 'persn'; expected a label "
            r"of COCO-80 \(model\.labels: coco\); did you mean 'person'\?$",
        ),
        (
            tracked(lines=[{"name": "l", "a": [0, 0], "b": [1, 1], "classes": ["unicorn"]}]),
            r"^streams\[1\]\.lines\[0\]\.classes\[0\]: unknown class 'unicorn'; expected a label "
            r"of COCO-80 \(model\.labels: coco\)$",
        ),
        (
            {
                "streams": [
                    {"id": "a", "url": "rtsp://h/a"},
                    {"id": "b", "url": "rtsp://h/b", "zones": [{"name": "z", "points": SQUARE}]},
                ]
            },
            r"^streams\[1\]\.zones: zones and lines count tracked objects, and this stream's "
            r"tracking is off; set streams\[1\]\.tracking\.enabled: true \(or tracking\.enabled: "
            r"true at the top level\)$",
        ),
        (
            {
                "streams": [
                    {
                        "id": "b",
                        "url": "rtsp://h/b",
                        "tracking": {"enabled": False},
                        "lines": [{"name": "l", "a": [0, 0], "b": [1, 1]}],
                    },
                ],
                "tracking": {"enabled": True},
            },
            r"^streams\[0\]\.lines: zones and lines count tracked objects",
        ),
        (
            tracked(zones=[{"name": "z", "points": SQUARE, "dwell_alert_s": 0}]),
            r"^streams\[1\]\.zones\[0\]\.dwell_alert_s: 0 is out of range",
        ),
        (
            tracked(zones=[{"name": "z", "points": SQUARE, "units": "percent"}]),
            r"^streams\[1\]\.zones\[0\]\.units: expected one of pixels, fraction",
        ),
        (
            tracked(zones=[{"name": "z", "points": SQUARE, "colour": "red"}]),
            r"^streams\[1\]\.zones\[0\]\.colour: unknown key; expected one of classes, "
            r"dwell_alert_s, name, points, units$",
        ),
        (tracked(zones=[{"points": SQUARE}]), r"^streams\[1\]\.zones\[0\]\.name: missing"),
        (tracked(lines=[{"name": "l", "a": [0, 0]}]), r"^streams\[1\]\.lines\[0\]\.b: missing"),
        (tracked(zones={"name": "z"}), r"^streams\[1\]\.zones: expected a list, got dict"),
        (
            tracked(zones=[{"name": "z", "points": [[0, 0], [1, "x"], [1, 1]]}]),
            r"^streams\[1\]\.zones\[0\]\.points\[1\]: expected a point \[x, y\] of two numbers",
        ),
        (
            tracked(lines=[{"name": "l", "a": [0, 0, 0], "b": [1, 1]}]),
            r"^streams\[1\]\.lines\[0\]\.a: expected a point \[x, y\] of two numbers",
        ),
        (
            tracked(zones=[{"name": "z", "points": SQUARE, "classes": []}]),
            r"^streams\[1\]\.zones\[0\]\.classes: expected a non-empty list of class names",
        ),
    ],
)
def test_zone_and_line_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_zones_and_lines_load_in_their_units():
    config = parse_config(
        tracked(
            zones=[
                {"name": "door", "points": SQUARE, "classes": ["person"], "dwell_alert_s": 30},
                {"name": "lot", "units": "fraction", "points": [[0, 0.5], [1, 0.5], [1, 1]]},
            ],
            lines=[{"name": "road", "a": [0, 400], "b": [1280, 400]}],
        )
    )
    door, lot = config.streams[1].zones
    assert (door.name, door.classes, door.dwell_alert_s, door.units) == (
        "door",
        ("person",),
        30.0,
        "pixels",
    )
    assert door.points == ((0, 0), (100, 0), (100, 100), (0, 100))
    assert lot.units == "fraction" and lot.classes is None and lot.dwell_alert_s is None
    (road,) = config.streams[1].lines
    assert (road.a, road.b, road.units) == ((0.0, 400.0), (1280.0, 400.0), "pixels")
    assert config.streams[0].zones == () and config.streams[0].lines == ()


def test_zone_classes_are_checked_against_a_labels_file(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("forklift\npallet\n")
    raw = tracked(zones=[{"name": "z", "points": SQUARE, "classes": ["forklift"]}])
    assert parse_config({**raw, "model": {"labels": str(labels)}}).streams[1].zones[0].classes
    raw = tracked(zones=[{"name": "z", "points": SQUARE, "classes": ["person"]}])
    with pytest.raises(ConfigError, match=r"^streams\[1\]\.zones\[0\]\.classes\[0\]: unknown "
                       r"class 'person'; expected a label of model\.labels \("):  # fmt: skip
        parse_config({**raw, "model": {"labels": str(labels)}})


def test_the_default_configs_zone_example_loads_once_uncommented(tmp_path):
    """streams/default.yaml shows zones and lines in comments (make run stays as it was);
    uncommented, they are a valid config."""
    text = (REPO / "streams/default.yaml").read_text()
    example = re.compile(r"^    # ((?:tracking|record|zones|lines):.*|  - \{.*)$", re.M)
    assert len(example.findall(text)) == 6
    path = tmp_path / "config.yaml"
    path.write_text(example.sub(r"    \1", text))
    bikes = load_config(path).streams[0]
    assert bikes.tracking.enabled and [z.name for z in bikes.zones] == ["road"]
    assert bikes.record.enabled and bikes.record.dir == str(tmp_path / "recordings")
    assert [(ln.name, ln.classes) for ln in bikes.lines] == [("middle", ("person", "bicycle"))]
    assert not load_config(REPO / "config.yaml").streams[0].zones


RECORDING = {"id": "cam", "url": "rtsp://cam.local/1", "tracking": {"enabled": True}}


def test_record_top_level_and_per_stream_merge(tmp_path):
    config = parse_config(
        {
            "streams": [
                {**RECORDING, "record": {"events": ["cross"], "pre_s": 2}},
                {"id": "other", "url": "rtsp://cam.local/2"},
            ],
            "record": {"enabled": True, "dir": "rec", "post_s": 3, "max_bytes": 10 << 20},
        },
        base_dir=tmp_path,
    )
    cam, other = (s.record for s in config.streams)
    assert (cam.enabled, cam.events, cam.pre_s, cam.post_s) == (True, ("cross",), 2.0, 3.0)
    assert (other.enabled, other.events, other.pre_s) == (
        True,
        ("enter", "exit", "dwell", "cross"),
        5.0,
    )
    assert cam.dir == other.dir == config.record.dir == str(tmp_path / "rec")  # from the file's dir
    assert config.record.max_bytes == 10 << 20
    off = parse_config({"streams": [{**RECORDING, "record": {"enabled": False}}],
                        "record": {"enabled": True}})  # fmt: skip
    assert not off.streams[0].record.enabled
    assert not parse_config({"streams": [RECORDING]}).streams[0].record.enabled  # off by default


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"record": {"enabled": "yes"}}, r"^record\.enabled: expected true or false"),
        ({"record": {"pre_s": -1}}, r"^record\.pre_s: -1 is out of range"),
        ({"record": {"max_bytes": 1000}}, r"^record\.max_bytes: 1000 is out of range"),
        ({"record": {"events": ["crossing"]}}, r"^record\.events\[0\]: expected one of enter"),
        ({"record": {"events": []}}, r"^record\.events: expected a non-empty list"),
        ({"record": {"folder": "x"}}, r"^record\.folder: unknown key; expected one of"),
        (
            {"streams": [{**RECORDING, "record": {"dir": "elsewhere"}}]},
            r"^streams\[0\]\.record\.dir: set at the top level only \(record\.dir\)",
        ),
        (
            {"streams": [{**RECORDING, "record": {"max_bytes": 5 << 20}}]},
            r"^streams\[0\]\.record\.max_bytes: set at the top level only",
        ),
        (
            {"streams": [{**RECORDING, "record": {"buffer_bytes": 10}}]},
            r"^streams\[0\]\.record\.buffer_bytes: 10 is out of range",
        ),
    ],
)
def test_record_errors_name_the_key(raw, message, tmp_path):
    full = {"streams": [RECORDING], **raw}
    with pytest.raises(ConfigError, match=message):
        parse_config(full, base_dir=tmp_path)


def test_record_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "rec").write_text("a file")
    with pytest.raises(ConfigError, match=r"^record\.dir: .*rec is not a directory"):
        parse_config({"streams": [RECORDING], "record": {"dir": "rec"}}, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("device", "engine_device", "devices"),
    [
        ("cuda:1", "cuda:1", ()),
        ("cuda", "cuda:0", ()),
        ("cpu", "cpu", ()),
        (2, "cuda:2", ()),  # a GPU number
        ([1, 0], "cuda:1", (1, 0)),  # several: the engine's own is the first
        (["cuda:0", "cuda:3"], "cuda:0", (0, 3)),
        ([0], "cuda:0", (0,)),  # a list of one
        ("all", "cuda:0", "all"),  # resolved when the run starts
    ],
)
def test_engine_device_takes_one_device_a_list_or_all(device, engine_device, devices):
    engine = parse_config(minimal(engine={"device": device})).engine
    assert (engine.device, engine.devices) == (engine_device, devices)


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ({"device": []}, r"^engine\.device: expected at least one GPU in the list, got \[\]$"),
        ({"device": [0, "gpu1"]}, r"^engine\.device\[1\]: expected a GPU number or 'cuda:N'"),
        ({"device": [0, True]}, r"^engine\.device\[1\]: expected a GPU number"),
        ({"device": [0, 1, 0]}, r"^engine\.device\[2\]: GPU 0 is listed twice$"),
        ({"device": [0, "cuda:0"]}, r"^engine\.device\[1\]: GPU 0 is listed twice$"),
        ({"device": [-1]}, r"^engine\.device\[0\]: GPU -1 is out of range"),
        ({"device": -1}, r"^engine\.device: GPU -1 is out of range"),
        ({"device": "every"}, r"^engine\.device: expected 'cpu' or 'cuda:N' \(or a GPU number"),
        ({"device": {"gpu": 0}}, r"^engine\.device: expected 'cpu' or 'cuda:N'"),
        (
            {"device": [0, 1], "backend": "onnxruntime"},
            r"^engine\.device: a list of GPUs \(or all\) needs backend tensorrt or auto",
        ),
        ({"device": "all", "backend": "onnxruntime"}, r"^engine\.device: a list of GPUs"),
    ],
)
def test_engine_device_errors_name_the_key(engine, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(minimal(engine=engine))


def test_gpu_restart_budget_keys_are_checked():
    workers = parse_config(minimal(workers={"gpu_restart_budget": 0})).workers
    assert (workers.gpu_restart_budget, workers.gpu_restart_window_s) == (0, 120.0)
    with pytest.raises(ConfigError, match=r"^workers\.gpu_restart_budget: expected an integer"):
        parse_config(minimal(workers={"gpu_restart_budget": "3"}))
    with pytest.raises(ConfigError, match=r"^workers\.gpu_restart_window_s: 0 is out of range"):
        parse_config(minimal(workers={"gpu_restart_window_s": 0}))
