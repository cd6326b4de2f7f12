"""The pipeline's throughput with all three bridges on (MQTT, Redis Streams, NATS JetStream)
vs no sinks, side by side in one run, and each bridge's messages/s and CPU (issue 15).

    python benchmarks/sinks_bench.py config.yaml --duration 20 --rounds 2
    PATH=$PWD/.broker-kit/bin:$PATH python benchmarks/sinks_bench.py benchmarks/gpu.yaml \
        --streams 100 --clip1080 --paced --processes auto --warmup 12   # the GPU host

Brokers: ``mosquitto``, ``redis-server`` and ``nats-server`` from PATH (or /usr/sbin), each
started on a free loopback port with a temp config (tests/support/brokers.py, Debian packages
via tests/support/install_broker_deps.sh). The sides alternate (none, sinks; then sinks, none)
so that a drift of the shared machine falls on both. Each side is ``streams bench``'s pipeline
measurement (``measure_pipeline``: warm-up, then the timed window); with sinks, the bridges
are ``streams run``'s child processes, started before and stopped after, their messages/s and
CPU measured over the side's whole run (warm-up included), the brokers' CPU likewise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.bench.measure import process_cpu_s  # noqa: E402
from streams.bench.pipeline import bench_config, measure_pipeline, processes_for  # noqa: E402
from streams.config import load_config, parse_sinks  # noqa: E402
from streams.runtime.wiring import open_engine  # noqa: E402
from streams.sinks.process import SinkProcesses  # noqa: E402
from tests.support.brokers import Broker  # noqa: E402
from tests.support.rtsp import free_port  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--streams", type=int, help="default: engine.max_batch")
    parser.add_argument("--clip", help="read every stream from this file")
    parser.add_argument(
        "--clip1080",
        action="store_true",
        help="every stream from bench --gpu's 1080p30 clip (clip1080.mp4 in the cache)",
    )
    parser.add_argument("--paced", action="store_true", help="files in real time, like cameras")
    parser.add_argument("--processes", default="1", help="worker processes: N or auto")
    parser.add_argument(
        "--ceiling-s",
        type=float,
        default=10.0,
        help="then each bridge's own ceiling: the pipeline's Publisher sends det messages of "
        "a real frame's size as fast as it can for this long (0: skip)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    if args.clip1080:
        from streams.bench.sweep import apply_gpu_defaults

        args.sweep = None
        apply_gpu_defaults(args)  # makes clip1080.mp4 once, sets args.clip
    config = load_config(args.config)
    streams = args.streams or config.engine.max_batch
    config = bench_config(config, streams, paced=args.paced, clip=args.clip)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    config = replace(config, publish=replace(config.publish, endpoint=endpoint))
    processes = processes_for(config, args.processes)
    scratch = Path(tempfile.mkdtemp(prefix="sinks-bench-"))
    brokers = {}
    for kind in ("mqtt", "redis", "nats"):
        (scratch / kind).mkdir()
        brokers[kind] = Broker(kind, scratch / kind).start()
    sinks = parse_sinks([{"type": k, "url": b.url} for k, b in brokers.items()], scratch)
    engine, model_name = open_engine(config) if processes == 1 else (None, None)
    print(
        f"sinks bench: {streams} streams {'paced' if args.paced else 'unpaced'}, "
        f"{processes} process(es), {args.duration:g} s timed per side, {args.rounds} rounds",
        file=sys.stderr,
    )
    rows = []
    try:
        for round_index in range(args.rounds):
            sides = ("none", "sinks") if round_index % 2 == 0 else ("sinks", "none")
            for side in sides:
                rows.append(
                    measure_side(
                        side,
                        round_index,
                        config,
                        engine,
                        model_name,
                        processes,
                        args,
                        sinks,
                        brokers,
                    )
                )
                print_row(rows[-1])
        summary = summarise(rows)
        if args.ceiling_s > 0:
            summary["ceiling"] = ceiling(sinks, brokers, args.ceiling_s)
    finally:
        if engine is not None:
            engine.close()
        for broker in brokers.values():
            broker.stop()
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    return 0


def measure_side(side, round_index, config, engine, model_name, processes, args, sinks, brokers):
    bridges = None
    if side == "sinks":
        bridges = SinkProcesses(sinks, config.publish.endpoint)
        bridges.start()
    began = time.monotonic()
    broker_cpu = {k: process_cpu_s(b.process.pid) for k, b in brokers.items()}
    before = {row["sink"]: (row["sent"], process_cpu_s(row["pid"])) for row in figures(bridges)}
    result = measure_pipeline(config, engine, model_name, args.duration, processes, args.warmup)
    after = {row["sink"]: row for row in figures(bridges)}
    elapsed = time.monotonic() - began
    row = {
        "side": side,
        "round": round_index,
        "fps": result["fps"],
        "latency_p50_ms": result["latency_p50_ms"],
        "latency_p99_ms": result["latency_p99_ms"],
        "publish_dropped": result.get("publish_dropped", 0),
        "bridges": {},
    }
    if bridges is not None:
        for name, (sent, cpu) in before.items():
            now = after[name]
            row["bridges"][name] = {
                "msg_per_s": (now["sent"] - sent) / elapsed,
                "cpu_pct": 100 * (process_cpu_s(now["pid"]) - cpu) / elapsed,
                "dropped": sum(now["dropped"].values()),
                "state": now["state"],
                "broker_cpu_pct": 100
                * (process_cpu_s(brokers[name].process.pid) - broker_cpu[name])
                / elapsed,
            }
        bridges.stop()
    return row


def ceiling(sinks, brokers, duration_s: float) -> dict:
    """Each bridge's messages/s and CPU when the bus carries more than it can take: the
    pipeline's own Publisher, fed det messages (8 boxes, about 1 kB) in a tight loop."""
    from streams.bus.publisher import Publisher
    from streams.config import PublishConfig
    from streams.runtime.stats import PipelineStats

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    stats = PipelineStats()
    publisher = Publisher(PublishConfig(endpoint=endpoint, join_grace_ms=0), stats)
    bridges = SinkProcesses(sinks, endpoint)
    bridges.start()
    box = {"label": "person", "class_id": 0, "score": 0.91, "box": [374.0, 7.1, 493.2, 266.0]}
    message = {
        "v": 1,
        "type": "det",
        "stream": "cam-0",
        "seq": 0,
        "pts": 1.0,
        "capture_time": time.time(),
        "width": 640,
        "height": 272,
        "model": "yolov3-tiny",
        "latency_ms": {"total": 40.0},
        "detections": [box] * 8,
    }
    before = {row["sink"]: (row["sent"], process_cpu_s(row["pid"])) for row in bridges.figures()}
    broker_cpu = {k: process_cpu_s(b.process.pid) for k, b in brokers.items()}
    began = time.monotonic()
    sent = 0
    while time.monotonic() - began < duration_s:
        for _ in range(100):
            message["seq"] = sent
            publisher.publish(f"det/cam-{sent % 8}/", message)
            sent += 1
        time.sleep(0.001)
    time.sleep(0.6)  # the bridges' figures come twice a second
    elapsed = time.monotonic() - began
    result = {"offered_msg_per_s": sent / (elapsed - 0.6), "bridges": {}}
    for row in bridges.figures():
        name = row["sink"]
        result["bridges"][name] = {
            "msg_per_s": (row["sent"] - before[name][0]) / elapsed,
            "cpu_pct": 100 * (process_cpu_s(row["pid"]) - before[name][1]) / elapsed,
            "broker_cpu_pct": 100
            * (process_cpu_s(brokers[name].process.pid) - broker_cpu[name])
            / elapsed,
            "dropped": sum(row["dropped"].values()),
        }
    bridges.stop()
    publisher.close()
    print(
        f"ceiling     : the bus offered {result['offered_msg_per_s']:.0f} det msg/s for "
        f"{duration_s:g} s"
    )
    for name, b in result["bridges"].items():
        print(
            f"    {name:5}: {b['msg_per_s']:8.0f} msg/s, bridge CPU {b['cpu_pct']:5.1f} %, "
            f"broker CPU {b['broker_cpu_pct']:5.1f} %, dropped {b['dropped']}"
        )
    return result


def figures(bridges) -> list[dict]:
    return [] if bridges is None else bridges.figures()


def print_row(row: dict) -> None:
    line = (
        f"round {row['round']} {row['side']:>5}: {row['fps']:8.1f} frames/s, p50 "
        f"{row['latency_p50_ms']:.1f} ms, p99 {row['latency_p99_ms']:.1f} ms"
    )
    for name, b in row["bridges"].items():
        line += (
            f"\n    {name:5}: {b['msg_per_s']:8.1f} msg/s, bridge CPU {b['cpu_pct']:5.1f} %, "
            f"broker CPU {b['broker_cpu_pct']:5.1f} %, dropped {b['dropped']}, {b['state']}"
        )
    print(line, flush=True)


def summarise(rows: list[dict]) -> dict:
    none = [r["fps"] for r in rows if r["side"] == "none"]
    sinks = [r["fps"] for r in rows if r["side"] == "sinks"]
    summary = {
        "none_fps_median": statistics.median(none),
        "sinks_fps_median": statistics.median(sinks),
    }
    summary["ratio"] = summary["sinks_fps_median"] / summary["none_fps_median"]
    print(
        f"median      : none {summary['none_fps_median']:.1f} frames/s, all three sinks "
        f"{summary['sinks_fps_median']:.1f} frames/s = {summary['ratio']:.1%}"
    )
    return summary


if __name__ == "__main__":
    sys.exit(main())
