"""Churn through the REST API: add N streams, wait until each is live, remove them (each
publishes ``ended``), R times, against a real ``streams run``; after every round, what the run
holds: file descriptors, threads and RSS of its processes (the main one and any worker
processes), and with ``--gpu`` their GPU memory, the GPU's decoder load (nvidia-smi) and the
NVDEC sessions the run says it holds (``streams_nvdec_sessions`` on ``/metrics``).

    python benchmarks/api_churn.py --streams 20 --rounds 50            # the issue's full run, CPU
    python benchmarks/api_churn.py --streams 20 --rounds 50 --gpu      # TensorRT + NVDEC
    python benchmarks/api_churn.py --streams 4 --rounds 6 --json out.json   # what the test runs

One base stream runs throughout (a run needs one). The first round warms up (thread pools,
FFmpeg's and ONNX Runtime's lazily made state); ``warm`` is what the run holds after it and
``growth`` is the last round minus ``warm``: a leak grows with every round, a bound does not.
Exit code 1 if a round's streams did not all go live and end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.bus.subscriber import Subscriber  # noqa: E402

TOKEN = "churn-token-0123456789abcdef"
LIVE_TIMEOUT_S = 60.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, method: str = "GET", body: object = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


class Statuses:
    """A real SUB socket on the run's endpoint, keeping every stream's last ``status``
    state and counting ``ended`` per stream."""

    def __init__(self, endpoint: str) -> None:
        self.ended: dict[str, int] = {}
        self._sub = Subscriber([endpoint], kinds=["status"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            item = self._sub.receive(0.1)
            if item is not None and item[1]["state"] == "ended":
                stream = item[1]["stream"]
                self.ended[stream] = self.ended.get(stream, 0) + 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sub.close()


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append(int(entry.name))
    return found


def held(pid: int, gpu: bool) -> dict:
    """What the run's processes hold now (the main one and its children, summed)."""
    pids = [pid, *children(pid)]
    fds = threads = rss_kib = 0
    for p in pids:
        try:
            fds += len(os.listdir(f"/proc/{p}/fd"))
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    threads += int(line.split()[1])
                elif line.startswith("VmRSS:"):
                    rss_kib += int(line.split()[1])
        except OSError:
            continue  # exited meanwhile
    out = {"processes": len(pids), "fds": fds, "threads": threads, "rss_mib": rss_kib / 1024}
    if gpu:
        out.update(gpu_held(set(pids)))
    return out


def gpu_held(pids: set[int]) -> dict:
    """GPU memory of ``pids`` (MiB) and the decoder load (%), from nvidia-smi."""
    apps = subprocess.run(
        ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    memory = sum(
        int(used)
        for line in apps.splitlines()
        if line.strip()
        for app_pid, used in [line.split(", ")]
        if int(app_pid) in pids
    )
    used, decoder = subprocess.run(
        [
            "nvidia-smi",
            "--id=0",
            "--query-gpu=memory.used,utilization.decoder",
            "--format=csv,noheader,nounits",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split(", ")
    # gpu_mib is 0 where nvidia-smi sees other pids (a container's own pid namespace):
    # then gpu_used_mib, the whole GPU's, is the figure to watch.
    return {"gpu_mib": memory, "gpu_used_mib": int(used), "decoder_pct": int(decoder)}


def nvdec_sessions(base: str) -> int:
    """``streams_nvdec_sessions`` from the run's ``/metrics`` (every worker's sessions)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "streams_nvdec_sessions":
            return int(family.samples[0].value)
    raise SystemExit("the run's /metrics has no streams_nvdec_sessions")


def write_config(path: Path, clip: str, port: int, http_port: int, gpu: bool) -> None:
    raw = {
        "streams": [{"id": "base", "url": clip, "loop": True, "fps": 5}],
        "engine": (
            {"backend": "tensorrt", "max_batch": 32, "builder_optimization_level": 1}
            if gpu
            else {"backend": "onnxruntime", "max_batch": 8}
        ),
        "publish": {"endpoint": f"tcp://127.0.0.1:{port}", "stats_interval_s": 0.5},
        "http": {"port": http_port, "token": TOKEN},
    }
    path.write_text(yaml.safe_dump(raw))


def churn(args: argparse.Namespace) -> dict:
    clip = args.clip or "sample:bikes.mp4"
    tmp = Path(tempfile.mkdtemp(prefix="streams-churn-"))
    port, http_port = free_port(), free_port()
    config = tmp / "churn.yaml"
    write_config(config, clip, port, http_port, args.gpu)
    base = f"http://127.0.0.1:{http_port}"
    log = (tmp / "run.log").open("w")
    env = {k: v for k, v in os.environ.items() if k != "STREAMS_API_TOKEN"}
    process = subprocess.Popen(
        [sys.executable, "-m", "streams", "run", str(config), "--no-live"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
    )
    statuses = Statuses(f"tcp://127.0.0.1:{port}")
    rounds: list[dict] = []
    result: dict = {"streams": args.streams, "rounds": args.rounds, "gpu": args.gpu}
    try:
        deadline = time.monotonic() + (900 if args.gpu else 180)  # a first TensorRT build
        while True:
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=5)
                break
            except (urllib.error.URLError, OSError) as err:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the run did not get ready: {err}") from None
                time.sleep(0.2)
        result["start"] = held(process.pid, args.gpu)
        entry = {"url": clip, "loop": True, "fps": args.fps}
        if args.gpu:
            entry["decoder"] = "nvdec"
        for index in range(args.rounds):
            began = time.monotonic()
            ids = [f"churn{i}" for i in range(args.streams)]
            for sid in ids:
                call(f"{base}/api/streams", "POST", {"id": sid, **entry})
            live_by = time.monotonic() + LIVE_TIMEOUT_S
            while time.monotonic() < live_by:
                states = {s["id"]: s["state"] for s in call(f"{base}/api/streams")}
                if all(states.get(sid) == "live" for sid in ids):
                    break
                time.sleep(0.1)
            live = sum(states.get(sid) == "live" for sid in ids)
            peak = held(process.pid, args.gpu)
            if args.gpu:
                peak["nvdec_sessions"] = nvdec_sessions(base)
            ended_before = dict(statuses.ended)
            for sid in ids:
                call(f"{base}/api/streams/{sid}", "DELETE")
            ended_by = time.monotonic() + 10
            while time.monotonic() < ended_by:
                if all(statuses.ended.get(s, 0) > ended_before.get(s, 0) for s in ids):
                    break
                time.sleep(0.05)
            ended = sum(statuses.ended.get(s, 0) > ended_before.get(s, 0) for s in ids)
            time.sleep(args.settle_s)
            after = held(process.pid, args.gpu)
            if args.gpu:
                after["nvdec_sessions"] = nvdec_sessions(base)
            rounds.append(
                {
                    "round": index,
                    "live": live,
                    "ended": ended,
                    "peak": peak,
                    "after": after,
                    "seconds": round(time.monotonic() - began, 2),
                }
            )
            print(
                f"round {index + 1}/{args.rounds}: {live}/{args.streams} live, {ended} ended; "
                f"after: {after['fds']} fds, {after['threads']} threads, "
                f"{after['rss_mib']:.0f} MiB RSS"
                + (
                    f", {after['gpu_mib']} MiB GPU, {after['nvdec_sessions']} NVDEC sessions "
                    f"(peak {peak['nvdec_sessions']})"
                    if args.gpu
                    else ""
                )
                + f" (peak {peak['fds']} fds, {peak['threads']} threads)",
                file=sys.stderr,
                flush=True,
            )
        result["rounds_detail"] = rounds
        warm, last = rounds[0]["after"], rounds[-1]["after"]
        result["warm"], result["last"] = warm, last
        result["growth"] = {
            key: round(last[key] - warm[key], 1) for key in warm if key != "processes"
        }
        result["ok"] = all(r["live"] == args.streams and r["ended"] == args.streams for r in rounds)
    finally:
        statuses.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log.close()
        result["exit_code"] = process.returncode
        result["log_tail"] = (tmp / "run.log").read_text(errors="replace")[-3000:]
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--fps", type=float, default=2.0, help="each churned stream's fps cap")
    parser.add_argument("--clip", help="the video every stream plays (default sample:bikes.mp4)")
    parser.add_argument("--gpu", action="store_true", help="TensorRT and NVDEC; GPU figures too")
    parser.add_argument("--settle-s", type=float, default=0.5, help="pause before measuring")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args()
    result = churn(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("warm", "last", "growth", "ok") if k in result}))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
