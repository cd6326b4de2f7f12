"""A SIGTERM soon after ``python -m streams run`` starts is a stop, never a failure (issue 11,
item 9): every valid file ends ``ended`` (or never started) and the run exits 0.

SIGTERM came while the capture workers were opening their files or reading the first frame,
and the worker took "stopped before the first frame" for "the file has no decodable frame".
Earlier still, SIGTERM came while the CLI was importing its libraries, before it caught the
signal: the process died of it (exit -15) without a word.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPO, Collector, cleanup, free_port, start_cli, write_config

FROM_START_S = (0.1, 0.4, 0.7, 1.0, 1.5)  # after the process was started
FROM_CONNECTING_S = (0.0, 0.02, 0.1)  # after the first status: opening, first read


def sigterm_caught(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGTERM (its SigCgt mask, /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def _config(assets, tmp_path, port: int, processes: int) -> Path:
    streams = [
        {"id": "bikes", "url": str(assets.videos["bikes.mp4"]), "loop": True},
        {"id": "carphone", "url": str(assets.videos["carphone_pristine.mp4"]), "loop": True},
    ]
    return write_config(
        tmp_path / "c.yaml", streams, port, engine={"threads": 1}, workers={"processes": processes}
    )


def _stop_run(config: Path, port: int, delay_s: float, after_connecting: bool):
    """Start a run, SIGTERM it ``delay_s`` after the start (or after its first status);
    returns (exit code, whether SIGTERM was caught when sent, status messages, output)."""
    collector = Collector(f"tcp://127.0.0.1:{port}", kinds=("status",))
    process = start_cli("run", str(config), "--no-live")
    try:
        if after_connecting:
            assert collector.wait_for(lambda c: c.of("status"), 60), process.output()
        time.sleep(delay_s)
        caught = sigterm_caught(process.pid)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    finally:
        cleanup(process, collector)
    return code, caught, collector.of("status"), process.output()


def test_sigterm_at_start_ends_every_stream_and_exits_0(assets, tmp_path):
    runs = [(1, d, False) for d in FROM_START_S] + [(1, d, True) for d in FROM_CONNECTING_S]
    runs.append((2, 0.0, True))  # worker processes
    for processes, delay_s, after_connecting in runs:
        port = free_port()
        config = _config(assets, tmp_path, port, processes)
        code, caught, statuses, output = _stop_run(config, port, delay_s, after_connecting)
        when = (processes, delay_s, "after connecting" if after_connecting else "after start")
        failed = [m for m in statuses if m["state"] == "failed"]
        assert not failed, (when, failed, output[-3000:])
        if not caught:  # the interpreter had not run a line of ours: nothing can catch it
            assert code == -signal.SIGTERM and not statuses, (when, code, statuses)
            continue
        assert code == 0, (when, code, output[-3000:])
        assert "Traceback" not in output, (when, output[-3000:])
        last = {}
        for message in statuses:
            last[message["stream"]] = message["state"]
        assert set(last.values()) <= {"ended"}, (when, statuses)


def test_sigterm_is_caught_before_any_library_loads(assets, tmp_path):
    """The CLI catches SIGTERM before it loads a compiled library (numpy, YAML, OpenCV, ONNX
    Runtime: about half a second of imports on a small machine), so that a SIGTERM then
    drains instead of killing it. Proof of the contrary: a library from site-packages mapped
    while SIGTERM is still not caught (maps read first, then the signal mask)."""
    port = free_port()
    config = _config(assets, tmp_path, port, processes=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "streams", "run", str(config), "--no-live"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            maps = Path(f"/proc/{process.pid}/maps").read_text()
            if sigterm_caught(process.pid):
                break
            loaded = sorted(
                {line.split()[-1] for line in maps.splitlines() if "/site-packages/" in line}
            )
            assert not loaded, f"loaded before SIGTERM is caught: {loaded[:3]}"
            time.sleep(0.001)
        else:
            raise AssertionError("SIGTERM never caught")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
