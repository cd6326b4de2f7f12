"""What the browser view costs the pipeline: `streams run` on N streams, with nobody watching
and with K streams watched (their ``preview/<id>/`` subscribed, as the page's tiles do),
alternating in one run so both sides share the box's load.

The watcher is the view's own hub (streams/web/hub.py) in this process: it decodes every
picture's header as the page's server does. Throughput is read from the pipeline's ``stats``
messages (processed frames over each phase), so worker processes are measured alike.

    python benchmarks/preview_cost.py --streams 16                  # CPU, ONNX Runtime
    python benchmarks/preview_cost.py --idle-check                  # the per-batch check alone
    python benchmarks/preview_cost.py --base benchmarks/gpu.yaml --clip /tmp/clip1080.mp4 \\
        --streams 100 --pace realtime                               # GPU (gpu_preview.sh)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.bench.measure import child_pids, process_cpu_s  # noqa: E402
from streams.web.hub import Hub  # noqa: E402

SAMPLES = ("sample:bikes.mp4", "sample:carphone_pristine.mp4")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(args: argparse.Namespace, port: int, path: Path) -> None:
    base = yaml.safe_load(Path(args.base).read_text()) if args.base else {}
    base.setdefault("engine", {"backend": "onnxruntime"})
    urls = [args.clip] if args.clip else list(SAMPLES)
    base["streams"] = [
        {"id": f"s{i:03d}", "url": urls[i % len(urls)], "loop": True, "pace": args.pace}
        for i in range(args.streams)
    ]
    base["publish"] = {**base.get("publish", {}), "endpoint": f"tcp://127.0.0.1:{port}"}
    base["publish"]["stats_interval_s"] = 1.0
    base["metrics"] = {"port": 0}
    if args.preview_fps:
        base["preview"] = {"fps": args.preview_fps}
    path.write_text(yaml.safe_dump(base))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children (worker processes)."""
    return process_cpu_s(pid) + sum(process_cpu_s(child) for child in child_pids(pid))


def totals(hub: Hub) -> tuple[int, list[float]]:
    streams = hub.streams()
    return sum(s["processed"] for s in streams), [s["p99_ms"] for s in streams if s["p99_ms"]]


def phase(hub: Hub, pid: int, seconds: float) -> dict:
    pictures, (frames, _) = hub.pictures, totals(hub)
    cpu, began = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - began
    frames_after, p99 = totals(hub)
    return {
        "fps": (frames_after - frames) / elapsed,
        "pictures_per_s": (hub.pictures - pictures) / elapsed,
        "p99_ms": statistics.median(p99) if p99 else None,
        "cpu_cores": (cpu_seconds(pid) - cpu) / elapsed,
    }


def idle_check(batch: int = 32, calls: int = 100_000, repeats: int = 7) -> float:
    """Median ns of ``PreviewMaker.due`` on a batch of ``batch`` frames with nobody watching
    (what every batch pays for the view when no page is open), over ``repeats`` runs."""
    import timeit

    from streams.config import PreviewConfig
    from streams.runtime.preview import PreviewMaker

    class _Publisher:  # what due() reads of the publisher: the subscribed topics
        subscribed = frozenset({b"det/", b"status/", b"stats/", b"event/"})

    class _Frame:
        def __init__(self, i: int) -> None:
            self.stream_id = f"s{i:03d}"

    maker = PreviewMaker(_Publisher(), [], PreviewConfig())
    frames = [_Frame(i) for i in range(batch)]
    runs = timeit.repeat(lambda: maker.due(frames), number=calls, repeat=repeats)
    return statistics.median(runs) / calls * 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="a config to take model, engine, workers from")
    parser.add_argument("--clip", help="one video for every stream (default: the two samples)")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--watch", type=int, help="streams watched (default: all)")
    parser.add_argument("--pace", choices=("none", "realtime"), default="none")
    parser.add_argument("--preview-fps", type=float, help="preview.fps (default: the config's)")
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--phase", type=float, default=20.0, help="seconds per measured phase")
    parser.add_argument("--settle", type=float, default=2.0, help="after each switch, unmeasured")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the phases here")
    parser.add_argument(
        "--idle-check", action="store_true", help="only time the per-batch check, nobody watching"
    )
    args = parser.parse_args()
    if args.idle_check:
        print(f"PreviewMaker.due, batch of 32, nobody watching: {idle_check():.0f} ns per batch")
        return 0
    watch = args.streams if args.watch is None else args.watch

    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="preview-cost-"))
    config = tmp / "config.yaml"
    write_config(args, port, config)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "streams", "--log-level", "warning", "run", str(config)]
    process = subprocess.Popen([*command, "--no-live"], env=env)
    hub = Hub([f"tcp://127.0.0.1:{port}"]).start()
    rows = []
    try:
        deadline = time.monotonic() + 300
        while sum(s["state"] == "live" for s in hub.streams()) < args.streams:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the pipeline did not bring {args.streams} streams live")
            time.sleep(0.5)
        time.sleep(args.warmup)
        ids = sorted(s["stream"] for s in hub.streams())[:watch]
        for round_ in range(args.rounds):
            for watched in (False, True):
                tokens = [hub.watch(i, lambda s, h, j: None) for i in ids] if watched else []
                time.sleep(args.settle)
                row = {
                    "round": round_,
                    "watched": len(tokens),
                    **phase(hub, process.pid, args.phase),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                for token in tokens:
                    hub.unwatch(token)
                time.sleep(args.settle)
    finally:
        hub.close()
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    off = [r for r in rows if not r["watched"]]
    on = [r for r in rows if r["watched"]]

    def median(side: list[dict], key: str) -> float | None:
        values = [r[key] for r in side if r[key] is not None]
        return statistics.median(values) if values else None

    print(
        f"\n{args.streams} streams, {watch} watched, pace {args.pace}, {args.rounds} rounds "
        f"of {args.phase:g} s per side (medians)"
    )
    print("side        | frames/s | pictures/s | p99 ms (median stream) | CPU cores")
    for name, side in (("nobody", off), (f"{watch} watched", on)):
        p99 = median(side, "p99_ms")
        print(
            f"{name:11s} | {median(side, 'fps'):8.1f} | {median(side, 'pictures_per_s'):10.1f} | "
            f"{p99 if p99 is None else round(p99, 1)!s:22s} | {median(side, 'cpu_cores'):.2f}"
        )
    ratio = median(on, "fps") / median(off, "fps")
    print(f"watched / nobody throughput: {ratio:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "phases": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
