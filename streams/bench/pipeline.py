"""``python -m streams bench``: the bare engine and the whole pipeline, side by side.

Both measurements use the same engine object on the same machine in one run. The pipeline
reads the sample videos unpaced (``pace: none``: as fast as it takes frames, nothing dropped)
with one stream per batch slot, so it forms full batches like the bare engine loop does.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from dataclasses import replace

import cv2
import numpy as np

from processors.letterbox import preprocess_into
from streams.bench.measure import WARMUP_S, GpuSampler, cpu_line
from streams.bench.supervised import bench_supervised
from streams.config import Config, load_config
from streams.runtime.profiling import ThreadCpu
from streams.runtime.wiring import open_engine, resolve_sources, wire_pipeline

logger = logging.getLogger(__name__)


def bench_config(
    config: Config, streams: int, paced: bool = False, clip: str | None = None
) -> Config:
    """``streams`` looping copies of the configured streams, publishing on a free port.

    Unpaced (``pace: none``) measures throughput; paced (``realtime``, like cameras) measures
    latency and drops when the cameras offer more frames than the engine can take.
    """
    copies = tuple(
        replace(
            config.streams[i % len(config.streams)],
            id=f"{'cam' if clip else config.streams[i % len(config.streams)].id}-{i}",
            url=clip or config.streams[i % len(config.streams)].url,
            pace="realtime" if paced else "none",
            loop=True,
            fps=None,
        )
        for i in range(streams)
    )
    return replace(
        config, streams=copies, publish=replace(config.publish, endpoint="tcp://127.0.0.1:*")
    )


def first_frames(sources: list[str], count: int) -> list[np.ndarray]:
    """One decoded frame from each source, cycling, ``count`` in all."""
    frames = []
    for source in sources:
        cap = cv2.VideoCapture(source)
        ok, image = cap.read()
        cap.release()
        if ok:
            frames.append(image)
    if not frames:
        raise RuntimeError(f"no frame could be read from {sources}")
    return [frames[i % len(frames)] for i in range(count)]


def bench_engine_loop(engine, images: list[np.ndarray], duration_s: float) -> dict:
    """The bare engine on a real preprocessed batch, through bench_engine's loops: images per
    second with every slot in flight, and the batch time one batch at a time."""
    from streams.bench.engine import measure_latency, measure_throughput

    batch = len(images)
    slots = [engine.acquire() for _ in range(engine.num_slots)]
    for slot in slots:  # the loops below reuse these slots and their filled inputs
        for i, image in enumerate(images):
            preprocess_into(slot.input[i], image)
    for slot in slots:
        engine.release(slot)
    probe_ms = statistics.median(measure_latency(engine, batch, iters=5, warmup=2))
    iters = max(10, int(duration_s * 1000 / probe_ms))
    img_per_s = measure_throughput(engine, batch, iters, warmup=max(2, iters // 10))
    batch_ms = statistics.median(measure_latency(engine, batch, max(3, iters // 4), warmup=1))
    return {"batch": batch, "img_per_s": img_per_s, "batch_time_ms": batch_ms}


def bench_pipeline(
    config: Config, engine, model_name: str, duration_s: float, warmup_s: float = WARMUP_S
) -> dict:
    """Run the whole pipeline on looping files; frames published per second."""
    pipeline, publisher = wire_pipeline(config, engine, model_name)
    stats = pipeline.stats
    try:
        pipeline.start()
        time.sleep(warmup_s)
        processed_before = sum(s.processed for s in pipeline.stream_stats.values())
        decoded_before = sum(s.decoded for s in pipeline.stream_stats.values())
        dropped_before = sum(s.dropped for s in pipeline.stream_stats.values())
        for s in pipeline.stream_stats.values():
            s.recorded_latency_ms = []  # every frame from here on, for exact percentiles
        batches_before, frames_before = stats.batches, stats.batch_frames
        start = time.perf_counter()
        sampler, thread_cpu = GpuSampler(), ThreadCpu()
        time.sleep(duration_s)
        elapsed = time.perf_counter() - start
        utilisation = sampler.stop()
        cpu = thread_cpu.stop()
        processed = sum(s.processed for s in pipeline.stream_stats.values()) - processed_before
        decoded = sum(s.decoded for s in pipeline.stream_stats.values()) - decoded_before
        dropped = sum(s.dropped for s in pipeline.stream_stats.values()) - dropped_before
        latencies = np.concatenate(
            [
                np.asarray(s.recorded_latency_ms, dtype=np.float64)
                for s in pipeline.stream_stats.values()
            ]
        )
        batches = stats.batches - batches_before
        mean_batch = (stats.batch_frames - frames_before) / batches if batches else 0.0
    finally:
        pipeline.stop()
        publisher.close()
    p50, p99 = np.percentile(latencies, [50, 99]) if latencies.size else (np.nan, np.nan)
    return {
        "streams": len(config.streams),
        "fps": processed / elapsed,
        "offered_fps": decoded / elapsed,
        "dropped": dropped,
        "mean_batch": mean_batch,
        "latency_p50_ms": float(p50),
        "latency_p99_ms": float(p99),
        "published": stats.published,
        "publish_dropped": stats.publish_dropped,
        **utilisation,
        **cpu,
    }


def processes_for(config: Config, wanted: str) -> int:
    """``--processes``: a number, or ``auto``, decided exactly as ``run`` decides it for a
    config with these streams (``streams.scale.supervisor.resolve_processes``)."""
    from streams.scale.supervisor import resolve_processes

    processes = "auto" if wanted == "auto" else int(wanted)
    return resolve_processes(replace(config, workers=replace(config.workers, processes=processes)))[
        0
    ]


def measure_pipeline(
    config: Config,
    engine,
    model_name: str,
    duration_s: float,
    processes: int,
    warmup_s: float = WARMUP_S,
) -> dict:
    if processes > 1:
        return bench_supervised(config, processes, duration_s, warmup_s)
    return {**bench_pipeline(config, engine, model_name, duration_s, warmup_s), "processes": 1}


def _bench_gpus(args: argparse.Namespace) -> list[int] | None:
    """``bench --gpu``'s GPUs to scale over: ``--devices``, else ``engine.device`` when it
    lists several; None for the one-GPU curve."""
    from streams.errors import StreamsError
    from streams.scale.supervisor import resolve_gpus

    devices = getattr(args, "devices", None)
    config = load_config(args.config)
    if devices is not None:
        devices = devices if devices == "all" else tuple(devices)
        config = replace(config, engine=replace(config.engine, devices=devices))
    try:
        gpus = resolve_gpus(config)
    except StreamsError as err:
        raise StreamsError(f"--devices: {err}") from None
    if devices is not None and gpus is None:
        from engines.doctor import choose_backend

        _, why = choose_backend(config.engine.backend)
        raise StreamsError(f"--devices: bench --gpu needs TensorRT and an NVIDIA GPU: {why}")
    if devices is not None and len(gpus) < 2:
        raise StreamsError(f"--devices: {len(gpus)} GPU here; scaling needs two or more")
    return gpus if gpus and len(gpus) > 1 else None


def run_bench(args: argparse.Namespace) -> int:
    from streams.bench.sweep import apply_gpu_defaults, run_sweep

    if getattr(args, "gpu", False):
        asked_sweep = args.sweep
        gpus = _bench_gpus(args)  # before the clip is made: a wrong --devices says so at once
        apply_gpu_defaults(args)
        if gpus:
            from streams.bench.multi_gpu import MULTI_GPU_SWEEP, run_multi_gpu

            args.sweep = asked_sweep or MULTI_GPU_SWEEP  # each count runs twice: keep it short
            return run_multi_gpu(args, gpus)
    elif getattr(args, "devices", None):
        raise SystemExit("--devices goes with --gpu (the TensorRT + NVDEC curve)")
    args.processes = args.processes or "1"
    if args.sweep:
        return run_sweep(args)
    config = load_config(args.config)
    streams = args.streams or config.engine.max_batch
    config = bench_config(config, streams, paced=args.paced, clip=args.clip)
    engine, model_name = open_engine(config)
    try:
        batch = min(engine.max_batch, streams)
        images = first_frames(sorted(set(resolve_sources(config).values())), batch)
        print(
            f"bench: {engine.backend}, model {model_name}, batch {batch}, {streams} streams "
            f"{'paced like cameras' if args.paced else 'unpaced'}, {args.duration:g} s each",
            file=sys.stderr,
        )
        engine_result = bench_engine_loop(engine, images, args.duration)
        pipeline_result = measure_pipeline(
            config,
            engine,
            model_name,
            args.duration,
            processes_for(config, args.processes),
            args.warmup,
        )
    finally:
        engine.close()
    ratio = pipeline_result["fps"] / engine_result["img_per_s"]
    result = {
        "backend": engine.backend,
        "model": model_name,
        "paced": args.paced,
        "engine": engine_result,
        "pipeline": pipeline_result,
        "pipeline_vs_engine": ratio,
    }
    print(
        f"bare engine : {engine_result['img_per_s']:8.1f} img/s at batch {batch} "
        f"(batch time {engine_result['batch_time_ms']:.1f} ms, one at a time)"
    )
    print(
        f"pipeline    : {pipeline_result['fps']:8.1f} frames/s over {streams} streams, "
        f"mean batch {pipeline_result['mean_batch']:.2f}, latency p50 "
        f"{pipeline_result['latency_p50_ms']:.1f} ms p99 {pipeline_result['latency_p99_ms']:.1f} ms"
    )
    print(f"ratio       : {ratio:.1%} of the bare engine")
    print(f"threads     : {cpu_line(pipeline_result)}")
    if args.paced:
        offered = pipeline_result["offered_fps"]
        bound_ms = config.batch.max_wait_ms + 2 * engine_result["batch_time_ms"]
        result["overload"] = offered / engine_result["img_per_s"]
        result["latency_bound_ms"] = bound_ms
        print(
            f"overload    : cameras offer {offered:.1f} frames/s = "
            f"{result['overload']:.2f}x the engine; {pipeline_result['dropped']} dropped"
        )
        if result["overload"] < 1.0:
            print("bound       : not overloaded (the engine keeps up), no latency bound to check")
        else:
            print(
                f"bound       : p99 {pipeline_result['latency_p99_ms']:.1f} ms vs max_wait_ms + 2 "
                f"batch times = {bound_ms:.1f} ms: "
                f"{'within' if pipeline_result['latency_p99_ms'] <= bound_ms else 'EXCEEDED'}"
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0
