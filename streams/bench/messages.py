"""CPU per frame of the completer's publishing work: decoded detections -> messages -> bytes
handed to ZeroMQ.

One repetition replays ``--batches`` batches of ``--batch`` frames, each with realistic
detections (a Poisson number per frame, COCO classes weighted toward people and vehicles,
float32 boxes inside a ``--source`` frame, as decode_yolo_batch returns them), through what
:meth:`streams.runtime.pipeline.Pipeline._complete_loop` does after decoding: the batch's
``det`` messages built and encoded (:func:`streams.bus.messages.encode_detection_batch`),
each frame counted in its stream's stats and latency window, the messages handed to a real
:class:`~streams.bus.publisher.Publisher` whose thread sends them on a PUB socket bound on
127.0.0.1. By default nobody subscribes (ZeroMQ discards each message as it is sent); with
``--subscriber`` a SUB in another process drains every message over TCP, and ZeroMQ's I/O
thread in this process does the sending.

A repetition ends when the publisher thread has sent every message; its figure is this
process's CPU time (all threads: completer, publisher, ZeroMQ's, the garbage collector)
divided by the frames. Printed: the median over ``--repeats`` repetitions (and the spread),
with the completer's and the publisher thread's shares. No GPU, no model, no video needed.

Usage:
    python -m streams.bench.messages                      # batch 32, 8 detections per frame
    python -m streams.bench.messages --detections 20 --subscriber --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from processors.detections import Detections
from processors.labels import COCO80
from streams.arguments import count, number_in, positive_count
from streams.bus.messages import encode_detection_batch
from streams.bus.publisher import Publisher
from streams.capture.frames import Frame
from streams.config import PublishConfig
from streams.runtime.stats import PipelineStats, StreamStats

MODEL = "yolov8n"
# COCO ids as they turn up on street cameras: person, car, bicycle, motorbike, bus, truck, ...
CLASS_WEIGHTS = {
    0: 0.45,
    2: 0.28,
    1: 0.05,
    3: 0.04,
    5: 0.03,
    7: 0.06,
    9: 0.03,
    24: 0.02,
    26: 0.02,
    13: 0.02,
}


@dataclass
class BenchBatch:
    """What the completer holds once decode_yolo_batch has returned."""

    frames: list[Frame]
    decoded: list[Detections]
    started_mono_s: float
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float


def make_detections(
    rng: np.random.Generator, mean: float, source_hw: tuple[int, int], max_detections: int = 100
) -> Detections:
    count = min(int(rng.poisson(mean)), max_detections)
    height, width = source_hw
    ids = np.array(list(CLASS_WEIGHTS))
    weights = np.array(list(CLASS_WEIGHTS.values()))
    class_ids = rng.choice(ids, size=count, p=weights / weights.sum()).astype(np.int32)
    wh = rng.uniform(0.02, 0.4, size=(count, 2)) * (width, height)
    x1 = rng.uniform(0, width - wh[:, 0])
    y1 = rng.uniform(0, height - wh[:, 1])
    xyxy = np.stack([x1, y1, x1 + wh[:, 0], y1 + wh[:, 1]], axis=1).astype(np.float32)
    scores = np.sort(rng.uniform(0.25, 0.98, size=count).astype(np.float32))[::-1].copy()
    return Detections(xyxy, scores, class_ids)


def make_batches(
    count: int,
    batch: int,
    streams: int,
    mean: float,
    source_hw: tuple[int, int],
    seed: int,
    first_seq: int = 0,
) -> list[BenchBatch]:
    """``count`` batches, frames taken round-robin from ``streams`` streams."""
    rng = np.random.default_rng(seed)
    image = np.broadcast_to(np.zeros(3, np.uint8), (*source_hw, 3))  # shape only, no memory
    now = time.monotonic()
    batches = []
    for b in range(count):
        frames = []
        for i in range(batch):
            n = b * batch + i
            frames.append(
                Frame(
                    stream_id=f"cam{n % streams:03d}",
                    seq=first_seq + n // streams,
                    pts_s=(first_seq + n // streams) / 30.0,
                    capture_wall_s=time.time() - 0.03,
                    ready_mono_s=now - 0.03 + rng.uniform(0, 0.01),
                    decode_ms=rng.uniform(2, 6),
                    image_bgr=image,
                )
            )
        decoded = [make_detections(rng, mean, source_hw) for _ in range(batch)]
        batches.append(
            BenchBatch(
                frames,
                decoded,
                now - 0.02,
                rng.uniform(1, 3),
                rng.uniform(8, 20),
                rng.uniform(0.05, 0.3),
            )
        )
    return batches


def publish_batch(
    batch: BenchBatch,
    labels: tuple[str, ...],
    publisher: Publisher,
    stream_stats: dict[str, StreamStats],
) -> None:
    """What Pipeline._complete_loop does with one decoded batch (keep the two in step)."""
    now_s = time.monotonic()
    messages, totals_ms = encode_detection_batch(
        batch.frames,
        batch.decoded,
        labels,
        model=MODEL,
        started_mono_s=batch.started_mono_s,
        now_mono_s=now_s,
        preprocess_ms=batch.preprocess_ms,
        inference_ms=batch.inference_ms,
        postprocess_ms=batch.postprocess_ms,
    )
    for frame, total_ms in zip(batch.frames, totals_ms):
        stats = stream_stats[frame.stream_id]
        stats.processed += 1
        stats.latency_ms.add(total_ms, now_s)
        if stats.recorded_latency_ms is not None:
            stats.recorded_latency_ms.append(total_ms)
    if len(messages) < len(batch.frames):
        publisher.count_dropped(len(batch.frames) - len(messages))
    publisher.publish_encoded(messages)


_SUBSCRIBER = """
import sys, zmq
sock = zmq.Context().socket(zmq.SUB)
sock.setsockopt(zmq.RCVHWM, 0)
sock.setsockopt(zmq.SUBSCRIBE, b"")
sock.connect(sys.argv[1])
print("ready", flush=True)
received = 0
poller = zmq.Poller()
poller.register(sock, zmq.POLLIN)
poller.register(sys.stdin, zmq.POLLIN)
done = False
while True:
    events = dict(poller.poll(500 if done else None))
    if not events:
        break  # told to stop, and nothing more came for 0.5 s
    if sock in events:
        while True:
            try:
                sock.recv_multipart(zmq.NOBLOCK)
                received += 1
            except zmq.Again:
                break
    if not done and len(events) > (sock in events):  # stdin closed: drain what is in flight
        done = True
        poller.unregister(sys.stdin)
print(received, flush=True)
"""


def _thread_cpu_s(thread: threading.Thread) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def run(args: argparse.Namespace) -> dict:
    source_hw = tuple(int(v) for v in args.source.lower().split("x"))[::-1]  # WxH -> (h, w)
    total = args.batches * args.batch
    # Room for a whole repetition: the publisher drops nothing, so every message is encoded
    # and sent (the bound is the same code path either way).
    config = PublishConfig(
        endpoint="tcp://127.0.0.1:*",
        queue_size=total + 1,
        sndhwm=max(1000, total + 1),
        join_grace_ms=0,
    )
    stats = PipelineStats()
    publisher = Publisher(config, stats)
    subscriber = None
    if args.subscriber:
        subscriber = subprocess.Popen(
            [sys.executable, "-c", _SUBSCRIBER, publisher.endpoint],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        subscriber.stdout.readline()
        time.sleep(0.5)  # the subscription reaches the PUB socket
    stream_stats = {f"cam{i:03d}": StreamStats(f"cam{i:03d}") for i in range(args.streams)}
    labels = COCO80
    sent_thread = publisher._thread
    rows = []
    try:
        for rep in range(args.warmup + args.repeats):
            batches = make_batches(
                args.batches,
                args.batch,
                args.streams,
                args.detections,
                source_hw,
                seed=rep,
                first_seq=rep * total,
            )
            target = stats.published + stats.publish_dropped + total
            cpu0, main0, pub0 = time.process_time(), time.thread_time(), _thread_cpu_s(sent_thread)
            wall0 = time.perf_counter()
            for batch in batches:
                publish_batch(batch, labels, publisher, stream_stats)
            main1 = time.thread_time()
            while stats.published + stats.publish_dropped < target:
                time.sleep(0.0005)
            wall1 = time.perf_counter()
            cpu1, pub1 = time.process_time(), _thread_cpu_s(sent_thread)
            if rep >= args.warmup:
                rows.append(
                    {
                        "cpu_us": (cpu1 - cpu0) / total * 1e6,
                        "completer_us": (main1 - main0) / total * 1e6,
                        "publisher_us": (pub1 - pub0) / total * 1e6,
                        "wall_us": (wall1 - wall0) / total * 1e6,
                    }
                )
    finally:
        publisher.close()
        received = None
        if subscriber is not None:
            out, _ = subscriber.communicate("", timeout=30)
            received = int(out.split()[-1])
    detections = sum(len(d) for b in batches for d in b.decoded) / total
    median = {key: statistics.median(r[key] for r in rows) for key in rows[0]}
    return {
        "batch": args.batch,
        "batches": args.batches,
        "repeats": args.repeats,
        "streams": args.streams,
        "detections_per_frame": round(detections, 2),
        "source": args.source,
        "subscriber": bool(args.subscriber),
        "median_us_per_frame": {k: round(v, 2) for k, v in median.items()},
        "min_cpu_us": round(min(r["cpu_us"] for r in rows), 2),
        "max_cpu_us": round(max(r["cpu_us"] for r in rows), 2),
        "published": stats.published,
        "publish_dropped": stats.publish_dropped,
        "received": received,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=positive_count, default=32, help="frames per batch (32)")
    parser.add_argument(
        "--batches", type=positive_count, default=100, help="batches per repetition (100)"
    )
    parser.add_argument("--repeats", type=positive_count, default=15, help="timed repetitions (15)")
    parser.add_argument("--warmup", type=count, default=2, help="untimed repetitions first (2)")
    parser.add_argument(
        "--detections",
        type=number_in(float, "a mean", 0),
        default=8.0,
        help="mean detections per frame (Poisson; 8)",
    )
    parser.add_argument(
        "--streams", type=positive_count, default=128, help="streams the frames come from"
    )
    parser.add_argument("--source", default="1920x1080", help="source frame WxH (1920x1080)")
    parser.add_argument(
        "--subscriber",
        action="store_true",
        help="a SUB in another process drains every message over TCP",
    )
    parser.add_argument("--json", type=Path, help="also write the result here")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.bench.messages", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    result = run(args)
    med = result["median_us_per_frame"]
    reader = "a SUB draining" if result["subscriber"] else "no subscriber"
    print(
        f"batch {result['batch']}, {result['detections_per_frame']} detections per frame, "
        f"{result['streams']} streams, {reader}"
        f": median of {result['repeats']} x {result['batch'] * result['batches']} frames"
    )
    print(
        f"  CPU {med['cpu_us']:.2f} us per frame (min {result['min_cpu_us']:.2f}, max "
        f"{result['max_cpu_us']:.2f}): completer {med['completer_us']:.2f}, publisher thread "
        f"{med['publisher_us']:.2f}; wall {med['wall_us']:.2f}"
    )
    print(
        f"  published {result['published']}, dropped {result['publish_dropped']}"
        + (f", received {result['received']}" if result["received"] is not None else "")
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
