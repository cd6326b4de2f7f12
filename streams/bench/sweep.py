"""``bench --sweep`` and ``bench --gpu``: the camera curve, N streams of one clip paced and
unpaced, against the two ceilings measured in the same run (the bare engine, NVDEC)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from streams.bench.measure import cpu_line
from streams.bench.pipeline import (
    bench_config,
    bench_engine_loop,
    first_frames,
    measure_pipeline,
    processes_for,
)
from streams.config import load_config
from streams.runtime.preprocess import device_input_of
from streams.runtime.wiring import open_engine

NVDEC_CEILING_TRIALS = ((16, 1), (32, 4), (100, 5))  # (sessions, processes)


GPU_SWEEP = "1,8,32,64,100,128"


def apply_gpu_defaults(args: argparse.Namespace) -> None:
    """``bench --gpu``: the 1080p30 camera curve on TensorRT + NVDEC, ready to run.

    Sweeps 1..128 streams with worker processes (``auto``) over a 1080p30 H.264 clip made
    once from the bikes sample (``clip1080.mp4`` in the asset cache) unless ``--clip`` says
    otherwise. Refuses clearly where there is no TensorRT or GPU.
    """
    from engines.doctor import choose_backend
    from streams.errors import StreamsError

    backend, reason = choose_backend("auto")
    if backend != "tensorrt":
        raise StreamsError(
            f"bench --gpu needs TensorRT and an NVIDIA GPU: {reason} "
            "(python -m streams doctor says more)"
        )
    args.sweep = args.sweep or GPU_SWEEP
    args.processes = args.processes or "auto"
    if not args.clip:
        from streams.assets import default_cache_dir
        from streams.bench.decode import make_clip

        clip = default_cache_dir() / "videos" / "clip1080.mp4"
        if not clip.is_file():
            clip.parent.mkdir(parents=True, exist_ok=True)
            print(
                f"bench --gpu: encoding the 1080p30 benchmark clip {clip} (once)", file=sys.stderr
            )
            make_clip(clip)
        args.clip = str(clip)


def run_sweep(args: argparse.Namespace) -> int:
    """The GPU curve: N camera streams from one clip, paced and unpaced, against the two
    ceilings measured in the same run (NVDEC decode-only and the bare engine)."""
    config = load_config(args.config)
    if getattr(args, "gpu", False):
        config = replace(config, engine=replace(config.engine, backend="tensorrt"))
    counts = [int(n) for n in args.sweep.split(",")]
    if not args.clip:
        raise SystemExit(
            "--sweep needs --clip (e.g. a 1080p30 H.264 clip from "
            "python -m streams.bench.decode --make-clip clip.mp4)"
        )
    engine, model_name = open_engine(config)
    rows, result = [], {"backend": engine.backend, "model": model_name, "clip": args.clip}
    try:
        images = first_frames([args.clip], engine.max_batch)
        result["engine"] = bench_engine_loop(engine, images, min(args.duration, 10.0))
        print(
            f"ceiling, bare engine : {result['engine']['img_per_s']:8.0f} img/s at batch "
            f"{engine.max_batch}",
            flush=True,
        )
        device_input = device_input_of(engine)
        if device_input is not None:  # frames can stay on this GPU: NVDEC is the other ceiling
            from streams.bench.decode import run_sessions_in_processes

            # The best of one process and several: a single process is GIL-bound well
            # below what NVDEC can do, and the pipeline runs several worker processes.
            trials = [
                run_sessions_in_processes(
                    Path(args.clip),
                    sessions,
                    min(args.duration, 10.0),
                    device_input.device_index,
                    processes,
                )
                for sessions, processes in NVDEC_CEILING_TRIALS
            ]
            for trial in trials:
                print(
                    f"NVDEC decode-only    : {trial['total_fps']:8.0f} frames/s "
                    f"({trial['sessions']} sessions in {trial['processes']} processes)",
                    flush=True,
                )
            result["nvdec_trials"] = trials
            result["nvdec"] = max(trials, key=lambda t: t["total_fps"])
        ceiling = min(
            result["engine"]["img_per_s"], result.get("nvdec", {}).get("total_fps", float("inf"))
        )
        result["ceiling_fps"] = ceiling
        print(f"ceiling              : {ceiling:8.0f} frames/s (the lower of the two)", flush=True)
        print(
            f"{'streams':>7} {'procs':>5} {'paced':>6} {'offered':>8} {'inferred':>9} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'drops':>7} {'GPU %':>6} {'NVDEC %':>7} "
            f"{'of ceiling':>10}",
            flush=True,
        )
        for paced in (True, False):
            for n in counts:
                cfg = bench_config(config, n, paced=paced, clip=args.clip)
                row = measure_pipeline(
                    cfg,
                    engine,
                    model_name,
                    args.duration,
                    processes_for(cfg, args.processes),
                    args.warmup,
                )
                row.update(paced=paced, of_ceiling=row["fps"] / ceiling)
                rows.append(row)
                print(
                    f"{n:>7} {row['processes']:>5} {paced!s:>6} {row['offered_fps']:>8.0f} "
                    f"{row['fps']:>9.0f} "
                    f"{row['latency_p50_ms']:>7.1f} {row['latency_p99_ms']:>7.1f} "
                    f"{row['dropped']:>7} {row.get('gpu_util_pct', float('nan')):>6.0f} "
                    f"{row.get('nvdec_util_pct', float('nan')):>7.0f} "
                    f"{row['of_ceiling']:>10.1%}  {cpu_line(row, 3)}",
                    flush=True,
                )
    finally:
        engine.close()
    result["rows"] = rows
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0
