"""What a pip user gets: a wheel built from this tree, installed into a fresh venv and run from
another directory (issue 11, item 12). The venv has no pip and does not see this checkout: its
dependencies are links to the test venv's packages (so nothing is downloaded), never the
editable install of ``streams`` itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from streams.bus.messages import validate
from tests.helpers import REPO, Collector, free_port

pytestmark = pytest.mark.slow

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"  # what the packaged default publishes on
_NOT_COPIED = (
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*cache",
    ".*-kit",
    "*.onnx",
    "*.engine",
    ".whl",
)
_NOT_LINKED = ("pip", "streams", "processors", "engines", "__pycache__", "__editable__")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    @property
    def streams(self) -> str:
        return str(self.venv / "bin" / "streams")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(*cmd: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    """``pip wheel .`` of a copy of this tree, installed with ``--no-deps`` into a venv made
    ``--without-pip`` whose site-packages links to the test venv's dependencies."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"  # a copy: no stale build/ of this checkout ends up in the wheel
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*_NOT_COPIED), symlinks=True)
    built = _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(source),
        "--no-deps",
        "--no-build-isolation",  # setuptools from the test venv: no download
        "--no-index",
        "-w",
        str(root / "dist"),
        cwd=root,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (root / "dist").glob("streams-*.whl")

    venv = root / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=root)
    assert made.returncode == 0, made.stderr
    ours = Path(sysconfig.get_paths()["purelib"])
    theirs = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    for entry in ours.iterdir():
        if entry.suffix == ".pth" or entry.name.startswith(_NOT_LINKED):
            continue
        (theirs / entry.name).symlink_to(entry)
    # pip runs from the test venv, installing into (and shebangs for) the new one.
    done = _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(venv / "bin" / "python"),
        "install",
        "--no-deps",
        "--no-index",
        str(wheel),
        cwd=root,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    where = _run(
        str(venv / "bin" / "python"), "-c", "import streams; print(streams.__file__)", cwd=root
    )
    assert where.stdout.strip().startswith(str(theirs)), where.stdout + where.stderr
    return Installed(wheel, venv)


def test_the_wheel_ships_the_default_config_and_it_is_the_repo_config(installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        packaged = wheel.read("streams/default.yaml")
    assert packaged == (REPO / "config.yaml").read_bytes()  # one source of truth, no drift
    assert (REPO / "config.yaml").read_bytes() == (REPO / "streams/default.yaml").read_bytes()


def test_the_wheel_ships_the_browser_views_page(installed):
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    for name in ("index.html", "view.js", "view.css"):
        assert f"streams/web/static/{name}" in names, sorted(names)


def test_streams_run_without_a_config_runs_the_packaged_default(installed, assets, tmp_path):
    collector = Collector(DEFAULT_ENDPOINT)
    try:
        result = _run(installed.streams, "run", "--duration", "3", "--no-live", cwd=tmp_path)
    finally:
        collector.finish()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for topic, message in collector.messages:
        validate(topic, message)
    for stream in ("bikes", "carphone"):  # the two sample streams of the default
        assert collector.of("det", stream), (stream, result.stderr)
        states = [m["state"] for m in collector.of("status", stream)]
        assert states[-1] == "ended", (stream, states)


def test_streams_init_writes_an_editable_copy_that_runs(installed, assets, tmp_path):
    target = tmp_path / "site"
    result = _run(installed.streams, "init", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = target / "config.yaml"
    assert config.read_bytes() == (REPO / "config.yaml").read_bytes()
    assert str(config) in result.stdout, result.stdout

    # Edited as a user would (own ports), it is what `streams run DIR/config.yaml` runs.
    raw = yaml.safe_load(config.read_text())
    port = free_port()
    raw["publish"]["endpoint"] = f"tcp://127.0.0.1:{port}"
    raw["http"]["port"] = 0
    config.write_text(yaml.safe_dump(raw))
    collector = Collector(f"tcp://127.0.0.1:{port}")
    try:
        run = _run(
            installed.streams, "run", str(config), "--duration", "3", "--no-live", cwd=target
        )
    finally:
        collector.finish()
    assert run.returncode == 0, run.stderr
    assert collector.of("det", "bikes") and collector.of("det", "carphone"), run.stderr

    # A second init never replaces the user's edits; --force does.
    again = _run(installed.streams, "init", str(target), cwd=tmp_path)
    assert again.returncode == 2, again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and str(config) in lines[0] and "--force" in lines[0], again.stderr
    assert yaml.safe_load(config.read_text())["http"]["port"] == 0  # untouched
    forced = _run(installed.streams, "init", str(target), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert config.read_bytes() == (REPO / "config.yaml").read_bytes()

    # Without DIR: the current directory.
    here = tmp_path / "here"
    here.mkdir()
    assert _run(installed.streams, "init", cwd=here).returncode == 0
    assert (here / "config.yaml").read_bytes() == (REPO / "config.yaml").read_bytes()


SUBCOMMANDS = {
    "run",
    "init",
    "subscribe",
    "view",
    "bench",
    "bench-engine",
    "doctor",
    "assets",
    "keys",
    "build-engine",
}


@pytest.mark.parametrize(
    "how, name", [("script", "streams"), ("module", "python -m streams")], ids=["script", "-m"]
)
def test_help_names_the_program_as_invoked_and_lists_every_subcommand(
    installed, tmp_path, how, name
):
    cmd = [installed.streams] if how == "script" else [installed.python, "-m", "streams"]
    result = _run(*cmd, "--help", cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith(f"usage: {name} "), text
    assert "`" not in text, text
    listed = {line.split()[0] for line in text.splitlines() if line.startswith("    ")}
    assert SUBCOMMANDS <= listed, (SUBCOMMANDS - listed, text)
    sub = _run(*cmd, "run", "--help", cwd=tmp_path, timeout=60)
    assert sub.stdout.startswith(f"usage: {name} run "), sub.stdout
    bad = _run(*cmd, "run", "--duration", "soon", cwd=tmp_path, timeout=60)
    assert bad.returncode == 2 and f"usage: {name} run" in bad.stderr, bad.stderr
    assert f"{name} run: error: argument --duration" in bad.stderr, bad.stderr


def test_asset_download_without_pip_says_pip_is_missing(installed, tmp_path):
    empty = tmp_path / "cache"
    result = _run(installed.streams, "assets", "--cache", str(empty), cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "pip is not installed" in last and installed.python in last, last
    assert "ensurepip" in last, last  # how to fix it
    assert "network access" not in last, last  # the network is not the problem here
