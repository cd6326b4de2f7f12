"""The command line refuses bad arguments in one line (no traceback) and its exit code tells
the truth (issue 11, items 6, 7, 8, 10)."""

import os

from tests.helpers import free_port, run_cli, write_config


def one_line_error(result, *words: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.stderr
    for word in words:
        assert word in lines[-1], result.stderr


# --- item 6: --duration, --log-level ---------------------------------------------------------


def test_a_non_positive_duration_is_refused(tmp_path):
    config = write_config(tmp_path / "c.yaml", [{"id": "a", "url": "x.mp4"}], free_port())
    for value in ("-5", "0", "soon"):
        result = run_cli("run", str(config), "--duration", value, "--no-live", timeout=30)
        assert result.returncode == 2, (value, result.stderr)
        one_line_error(result, "--duration", value)


def test_log_level_works_before_and_after_the_subcommand(tmp_path):
    for args in (
        ("--log-level", "debug", "keys", str(tmp_path / "before")),
        ("keys", str(tmp_path / "after"), "--log-level", "debug"),
    ):
        result = run_cli(*args, timeout=30)
        assert result.returncode == 0, (args, result.stderr)
    result = run_cli("keys", str(tmp_path / "bad"), "--log-level", "loud", timeout=30)
    assert result.returncode == 2
    one_line_error(result, "--log-level")


def test_log_level_after_run_takes_effect(assets, tmp_path):
    video = str(assets.videos["carphone_pristine.mp4"])
    config = write_config(
        tmp_path / "c.yaml", [{"id": "a", "url": video, "pace": "none", "fps": 1}], free_port()
    )
    result = run_cli("run", str(config), "--no-live", "--log-level", "warning", timeout=120)
    assert result.returncode == 0, result.stderr
    assert " INFO " not in result.stderr, result.stderr  # info lines are off at warning
    result = run_cli("--log-level", "warning", "run", str(config), "--no-live", timeout=120)
    assert result.returncode == 0, result.stderr
    assert " INFO " not in result.stderr, result.stderr


# --- item 7: subscribe and keys arguments ----------------------------------------------------


def test_subscribe_refuses_a_bad_endpoint_in_one_line():
    result = run_cli("subscribe", "notanendpoint", "--timeout", "1", timeout=30)
    assert result.returncode == 2, result.stderr
    one_line_error(result, "notanendpoint")


def test_subscribe_refuses_an_unknown_kind_in_one_line():
    result = run_cli("subscribe", "tcp://127.0.0.1:1", "--kinds", "detections", timeout=30)
    assert result.returncode == 2, result.stderr
    one_line_error(result, "--kinds", "detections")
    ok = run_cli("subscribe", "tcp://127.0.0.1:1", "--kinds", "det, stats", "--timeout", "0.3")
    assert ok.returncode == 0, ok.stderr


def test_keys_refuses_a_directory_it_cannot_create():
    result = run_cli("keys", "/proc/nope", timeout=30)
    assert result.returncode == 2, result.stderr
    one_line_error(result, "/proc/nope")


# --- item 8: keys never replaces a key pair silently -----------------------------------------


def test_keys_refuses_to_overwrite_without_force(tmp_path):
    first = run_cli("keys", str(tmp_path), timeout=30)
    assert first.returncode == 0, first.stderr
    public = tmp_path / "server.key"
    before = public.read_bytes()
    again = run_cli("keys", str(tmp_path), timeout=30)
    assert again.returncode == 2, again.stderr
    one_line_error(again, "server.key", "--force")
    assert public.read_bytes() == before
    forced = run_cli("keys", str(tmp_path), "--force", timeout=30)
    assert forced.returncode == 0, forced.stderr
    assert public.read_bytes() != before
    assert oct(os.stat(tmp_path / "server.key_secret").st_mode & 0o777) == "0o600"
    other = run_cli("keys", str(tmp_path), "--name", "client1", timeout=30)
    assert other.returncode == 0, other.stderr  # another name is another pair


# --- item 10: a run where no stream ever went live fails --------------------------------------


def _garbage(tmp_path, name: str):
    path = tmp_path / name
    path.write_bytes(os.urandom(64 * 1024))
    return str(path)


def test_a_run_whose_every_stream_failed_exits_1(tmp_path):
    streams = [{"id": s, "url": _garbage(tmp_path, f"{s}.mp4"), "pace": "none"} for s in ("a", "b")]
    for workers in ({"processes": 1}, {"processes": 2}):
        config = write_config(
            tmp_path / "c.yaml", streams, free_port(), engine={"threads": 1}, workers=workers
        )
        result = run_cli("run", str(config), "--no-live", timeout=120)
        assert result.returncode == 1, (workers, result.stderr)
        one_line_error(result, "no stream")


def test_a_run_where_one_stream_went_live_exits_0(assets, tmp_path):
    video = str(assets.videos["carphone_pristine.mp4"])
    streams = [
        {"id": "good", "url": video, "pace": "none", "fps": 1},
        {"id": "bad", "url": _garbage(tmp_path, "bad.mp4"), "pace": "none"},
    ]
    for workers in ({"processes": 1}, {"processes": 2}):
        config = write_config(
            tmp_path / "c.yaml", streams, free_port(), engine={"threads": 1}, workers=workers
        )
        result = run_cli("run", str(config), "--no-live", timeout=120)
        assert result.returncode == 0, (workers, result.stderr)


def test_a_worker_that_cannot_start_fails_the_run_in_one_line(assets, tmp_path):
    """With worker processes, worker 0's start-up error (here: 3 labels for 80 classes) ends
    the run with that one line, not a traceback from the live view that never started."""
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    config = write_config(
        tmp_path / "c.yaml",
        [
            {"id": "a", "url": str(assets.videos["bikes.mp4"])},
            {"id": "b", "url": str(assets.videos["carphone_pristine.mp4"])},
        ],
        free_port(),
        model={"labels": str(labels)},
        workers={"processes": 2},
    )
    result = run_cli("run", str(config), timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "model.labels:" in result.stderr and "has 3 labels but the model has 80" in result.stderr


def test_bench_engine_runs_its_benchmark_and_names_a_missing_model(tmp_path):
    """`bench-engine` was registered with a module that no longer existed (AttributeError
    traceback): it must reach the engine benchmark, and a missing model is one line."""
    result = run_cli(
        "bench-engine", "--model", str(tmp_path / "nope.onnx"), "--backend", "onnxruntime"
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "nope.onnx" in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr


def test_bench_engine_int8_on_the_cpu_engine_is_a_usage_error(tmp_path):
    """int8 is TensorRT's (calibrated on the sample videos); asked of ONNX Runtime it is one
    line naming both options, before any model is read."""
    result = run_cli(
        "bench-engine",
        "--model",
        str(tmp_path / "m.onnx"),
        "--backend",
        "onnxruntime",
        "--precision",
        "int8",
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "--precision int8 needs --backend tensorrt" in result.stderr, result.stderr
