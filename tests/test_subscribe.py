"""``python -m streams subscribe`` against a real run (issue 11, item 11): ``--stream`` prints
only that stream (its part of ``stats`` too), an unknown id gets a hint, expected drops are a
rate unless ``--gaps``; and bad CURVE key files are one line, exit 2."""

import json
import os
import re
import signal
import subprocess
import sys
import time

from tests.helpers import REPO, cleanup, free_port, run_cli, start_cli, wait_until, write_config

SUMMARY = re.compile(r"^(\S+): \d+ frames dropped in the last [\d.]+ s \(latest-frame replacement")


class Subscribe:
    """A real ``subscribe`` process, its stdout and stderr in files of their own."""

    def __init__(self, tmp_path, name: str, *args: str) -> None:
        self._out, self._err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        with self._out.open("w") as out, self._err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "subscribe", *args],
                cwd=REPO,
                stdout=out,
                stderr=err,
            )

    def stdout(self) -> list[str]:
        return self._out.read_text().splitlines()

    def stderr(self) -> list[str]:
        return self._err.read_text().splitlines()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        finally:
            if self.process.poll() is None:
                self.process.kill()


def test_subscribe_one_stream_hint_and_gap_rate(assets, tmp_path):
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    config = write_config(
        tmp_path / "c.yaml",
        [  # played in real time, faster than one engine thread keeps up: drops by design
            {"id": "bikes", "url": str(assets.videos["bikes.mp4"]), "loop": True},
            {"id": "carphone", "url": str(assets.videos["carphone_pristine.mp4"]), "loop": True},
        ],
        port,
        engine={"threads": 1, "max_batch": 1},
    )
    run = start_cli("run", str(config), "--no-live")
    subscribers = {}
    began_s = time.monotonic()
    try:
        subscribers = {
            "one": Subscribe(tmp_path, "one", endpoint, "--stream", "bikes", "--gap-interval", "2"),
            "unknown": Subscribe(tmp_path, "unknown", endpoint, "--stream", "bikez"),
            "each": Subscribe(
                tmp_path, "each", endpoint, "--stream", "bikes", "--kinds", "det", "--gaps"
            ),
            "json": Subscribe(
                tmp_path, "json", endpoint, "--stream", "bikes", "--kinds", "stats", "--json"
            ),
        }
        one, unknown, each = subscribers["one"], subscribers["unknown"], subscribers["each"]

        def seen_enough() -> bool:
            return (
                sum(bool(SUMMARY.match(line)) for line in one.stderr()) >= 2
                and any("stats: bikes" in line for line in one.stdout())
                and unknown.stderr()
                and sum(line.startswith("GAP bikes") for line in each.stderr()) >= 3
            )

        assert wait_until(seen_enough, 90, interval_s=0.2), (
            run.output()[-2000:],
            {name: (s.stdout()[-5:], s.stderr()[-5:]) for name, s in subscribers.items()},
        )
        codes = {name: s.stop() for name, s in subscribers.items()}
        listened_s = time.monotonic() - began_s
    finally:
        for s in subscribers.values():
            s.stop()
        if run.poll() is None:
            run.drain()
        cleanup(run)
    assert codes == dict.fromkeys(subscribers, 0), codes

    # --stream bikes: bikes' det, status and its part of stats; nothing of carphone.
    lines = one.stdout()
    assert any(line.startswith("det bikes #") for line in lines), lines[:5]
    assert all(
        line.startswith(("det bikes #", "status bikes:", "stats: bikes ")) for line in lines
    ), [line for line in lines if "bikes" not in line][:5]
    assert not any("carphone" in line for line in lines + one.stderr())
    # Its drops as a rate: no GAP line, one sum per interval (2 s) at most.
    assert not any(line.startswith("GAP") for line in one.stderr()), one.stderr()[:5]
    summaries = [line for line in one.stderr() if SUMMARY.match(line)]
    assert {SUMMARY.match(line).group(1) for line in summaries} == {"bikes"}
    assert len(summaries) <= listened_s / 2 + 2, (listened_s, summaries)

    # --gaps: each gap, no sums.
    assert all(line.startswith("det bikes #") for line in each.stdout())
    assert not any(SUMMARY.match(line) for line in each.stderr())

    # --json stats: only bikes' entry.
    for line in subscribers["json"].stdout():
        message = json.loads(line)
        assert message["type"] == "stats" and [s["stream"] for s in message["streams"]] == ["bikes"]

    # An unknown id: nothing printed, one hint naming the ids the publisher has.
    assert unknown.stdout() == []
    hint = [line for line in unknown.stderr() if "bikez" in line]
    assert len(hint) == 1 and "'bikez'" in hint[0] and "bikes, carphone" in hint[0], hint


def _one_line_error(result, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], (word, result.stderr)


def test_subscribe_refuses_bad_curve_key_files(tmp_path):
    assert run_cli("keys", str(tmp_path), timeout=30).returncode == 0
    assert run_cli("keys", str(tmp_path), "--name", "me", timeout=30).returncode == 0
    server, client = str(tmp_path / "server.key"), str(tmp_path / "me.key_secret")
    text = tmp_path / "notes.txt"
    text.write_text("public key: ask Bob\n")
    binary = tmp_path / "clip.key"
    binary.write_bytes(os.urandom(4096))
    short = tmp_path / "short.key"
    short.write_text('public-key = "tooshort"\nsecret-key = "tooshort"\n')
    missing, directory = str(tmp_path / "nope.key"), str(tmp_path)
    cases = [
        (["--server-key", missing, "--client-key", client], "--server-key", missing),
        (["--server-key", directory, "--client-key", client], "--server-key", directory),
        (["--server-key", str(text), "--client-key", client], "--server-key", str(text)),
        (["--server-key", server, "--client-key", str(binary)], "--client-key", str(binary)),
        (["--server-key", server, "--client-key", str(short)], "--client-key", str(short)),
        (["--server-key", server, "--client-key", missing], "--client-key", missing),
        (["--server-key", server, "--client-key", directory], "--client-key", directory),
        (["--server-key", server, "--client-key", server], "--client-key", server),  # public
        (["--server-key", server], "--client-key", "--server-key"),
    ]
    for args, argument, named in cases:
        result = run_cli("subscribe", "tcp://127.0.0.1:1", "--timeout", "0.3", *args, timeout=30)
        _one_line_error(result, f"argument {argument}", named)
    ok = run_cli(
        "subscribe", "tcp://127.0.0.1:1", "--timeout", "0.3", "--server-key", server,
        "--client-key", client, timeout=30,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
