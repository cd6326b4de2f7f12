"""Benchmark an inference engine through the slot API the pipeline uses.

Two measurements per batch size, both on random input written once into every slot:

- latency: one batch at a time (acquire, submit, wait, release), so each figure is the full
  host-to-host time of one batch: copy in, inference, copy out;
- throughput: every slot in flight (submit on all, then wait on the oldest and resubmit it),
  the pipeline's steady state, in images per second.

Usage:
    python -m streams.bench.engine --model yolov3-tiny.onnx --backend tensorrt \\
        --precision fp16 --batch 1,8,32,64 --iters 500 --opt-level 0 --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.options import EngineOptions
from streams.arguments import count, number_in, positive_count

if TYPE_CHECKING:
    from engines.calibration import CalibrationSet

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m streams.bench.engine`` (also used by ``streams bench-engine``)."""
    defaults = EngineOptions()
    parser.add_argument("--model", type=Path, required=True, help="ONNX model")
    parser.add_argument("--backend", choices=("tensorrt", "onnxruntime"), default="tensorrt")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    parser.add_argument(
        "--calibration-frames",
        type=positive_count,
        default=32,
        help="int8: frames of the sample videos that calibrate (speed does not depend on them)",
    )
    parser.add_argument("--batch", default="1,8,32", help="comma-separated batch sizes")
    parser.add_argument(
        "--max-batch", type=count, default=0, help="engine max batch (default: the largest --batch)"
    )
    parser.add_argument("--opt-batch", type=count, default=0, help="TensorRT profile opt batch")
    parser.add_argument(
        "--iters", type=positive_count, default=200, help="timed batches per measurement"
    )
    parser.add_argument("--warmup", type=count, default=20, help="untimed batches first")
    parser.add_argument(
        "--contexts",
        type=positive_count,
        default=defaults.contexts,
        help="TensorRT contexts (slots) kept in flight for throughput",
    )
    parser.add_argument(
        "--opt-level",
        type=number_in(int, "a builder level", 0, 5),
        default=defaults.builder_optimization_level,
        help="TensorRT builder optimization level 0..5 (0 builds fastest)",
    )
    parser.add_argument("--workspace-mb", type=positive_count, default=defaults.workspace_mb)
    parser.add_argument("--cuda-graphs", action="store_true", help="TensorRT: CUDA graphs")
    parser.add_argument(
        "--input-on-device",
        action="store_true",
        help="TensorRT: skip the host-to-device input copy, as when frames are "
        "preprocessed on the GPU straight into the engine's input buffer",
    )
    parser.add_argument("--device", default=defaults.device, help="cuda:N")
    parser.add_argument("--cache-dir", type=Path, default=defaults.cache_dir)
    parser.add_argument("--threads", type=count, default=0, help="ONNX Runtime threads")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")


def sample_calibration(model: Path, frames: int) -> CalibrationSet:
    """int8 calibration frames from the sample videos, letterboxed to ``model``'s input: what a
    speed benchmark calibrates on (the same frames give the same cached engine in every tool)."""
    from processors.calibration import calibration_set, model_input_hw
    from streams.assets import fetch_assets

    videos = [str(p) for p in fetch_assets().videos.values()]
    return calibration_set(videos, model_input_hw(model), frames)


def _percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def _make_engine(args: argparse.Namespace, options: EngineOptions) -> Any:
    if args.backend == "tensorrt":
        from engines.tensorrt_engine import TensorRTEngine

        return TensorRTEngine(args.model, options)
    from engines.onnxruntime_engine import OnnxRuntimeEngine

    return OnnxRuntimeEngine(args.model, options)


def _submit(slot: Any, batch: int, on_device: bool) -> None:
    if on_device:
        slot.submit(batch, input_on_device=True)
    else:
        slot.submit(batch)


def measure_latency(
    engine: Any, batch: int, iters: int, warmup: int, on_device: bool = False
) -> list[float]:
    """Milliseconds per batch, one batch at a time."""
    times = []
    for i in range(warmup + iters):
        slot = engine.acquire()
        start = time.perf_counter()
        _submit(slot, batch, on_device)
        slot.wait()
        elapsed = time.perf_counter() - start
        engine.release(slot)
        if i >= warmup:
            times.append(elapsed * 1e3)
    return times


def measure_throughput(
    engine: Any, batch: int, iters: int, warmup: int, on_device: bool = False
) -> float:
    """Images per second with every slot in flight."""
    slots = [engine.acquire() for _ in range(engine.num_slots)]
    try:
        for slot in slots:
            _submit(slot, batch, on_device)
        start = 0.0
        for i in range(warmup + iters):
            if i == warmup:
                start = time.perf_counter()
            slot = slots[i % len(slots)]
            slot.wait()
            _submit(slot, batch, on_device)
        for slot in slots:  # count the batches still in flight once they finish
            slot.wait()
        elapsed = time.perf_counter() - start
    finally:
        for slot in slots:
            engine.release(slot)
    return batch * (iters + len(slots)) / elapsed


def run(args: argparse.Namespace) -> int:
    """Benchmark ``args.model`` and print a table; 0 on success, 2 on a usage error."""
    import numpy as np  # here, not at import: the CLI builds its parser before it loads anything

    from streams.errors import USER_ERRORS

    try:
        batches = sorted({int(b) for b in str(args.batch).split(",") if b.strip()})
    except ValueError:
        print(f"--batch: expected comma-separated integers, got {args.batch!r}", file=sys.stderr)
        return 2
    if not batches or batches[0] < 1:
        print("--batch: batch sizes must be >= 1", file=sys.stderr)
        return 2
    max_batch = args.max_batch or batches[-1]
    on_device = bool(args.input_on_device)
    if on_device and args.backend != "tensorrt":
        print("--input-on-device needs --backend tensorrt", file=sys.stderr)
        return 2
    if args.precision == "int8" and args.backend != "tensorrt":
        print("--precision int8 needs --backend tensorrt", file=sys.stderr)
        return 2
    options = EngineOptions(
        backend=args.backend,
        device=args.device if args.backend == "tensorrt" else "cpu",
        max_batch=max_batch,
        opt_batch=args.opt_batch or None,
        precision=args.precision,
        contexts=args.contexts,
        workspace_mb=args.workspace_mb,
        builder_optimization_level=args.opt_level,
        cache_dir=Path(args.cache_dir),
        cuda_graphs=args.cuda_graphs,
        threads=args.threads,
    )
    started = time.perf_counter()
    try:
        if args.precision == "int8":
            calibration = sample_calibration(args.model, args.calibration_frames)
            options = replace(options, calibration_set=calibration)
        engine = _make_engine(args, options)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    setup_s = time.perf_counter() - started
    info: dict[str, Any] = {
        "model": str(args.model),
        "backend": engine.backend,
        "precision": args.precision,
        "max_batch": engine.max_batch,
        "slots": engine.num_slots,
        "iters": args.iters,
        "warmup": args.warmup,
        "setup_s": round(setup_s, 2),
        "built": getattr(engine, "built", None),
        "cuda_graphs": bool(args.cuda_graphs),
        "opt_level": args.opt_level,
        "input_on_device": on_device,
        "host": platform.node(),
    }
    if engine.backend == "tensorrt":
        import tensorrt as trt

        info.update(
            device=engine.device.name, tensorrt=trt.__version__, engine_path=str(engine.engine_path)
        )
    else:
        import onnxruntime as ort

        info.update(device=platform.processor() or "cpu", onnxruntime=ort.__version__)
        info["precision"] = "fp32"  # the CPU engine runs the model as exported
    results = []
    try:
        rng = np.random.default_rng(0)
        slots = [engine.acquire() for _ in range(engine.num_slots)]
        for slot in slots:
            slot.input[...] = rng.random(slot.input.shape, dtype=np.float32)
            slot.submit(engine.max_batch)  # also fills the device input buffers
            slot.wait()
        for slot in slots:
            engine.release(slot)
        for batch in batches:
            if batch > engine.max_batch:
                print(
                    f"skipping batch {batch}: engine max batch is {engine.max_batch}",
                    file=sys.stderr,
                )
                continue
            lat = measure_latency(engine, batch, args.iters, args.warmup, on_device)
            img_s = measure_throughput(engine, batch, args.iters, args.warmup, on_device)
            median = statistics.median(lat)
            results.append(
                {
                    "batch": batch,
                    "latency_median_ms": round(median, 3),
                    "latency_p99_ms": round(_percentile(lat, 99), 3),
                    "latency_img_s": round(batch * 1e3 / median, 1),
                    "throughput_img_s": round(img_s, 1),
                }
            )
    finally:
        engine.close()
    title = (
        f"{Path(args.model).name}  {info['backend']} {info['precision']}  "
        f"{info.get('device', '')}  slots={info['slots']}"
        f"{'  cuda-graphs' if args.cuda_graphs else ''}"
        f"{'  input-on-device' if on_device else ''}  "
        f"setup {setup_s:.1f} s ({'built' if info['built'] else 'loaded'})"
    )
    print(title)
    print(
        f"{'batch':>5}  {'median ms':>9}  {'p99 ms':>8}  {'img/s 1-at-a-time':>17}  "
        f"{'img/s all slots':>15}"
    )
    for r in results:
        print(
            f"{r['batch']:>5}  {r['latency_median_ms']:>9.3f}  {r['latency_p99_ms']:>8.3f}  "
            f"{r['latency_img_s']:>17.1f}  {r['throughput_img_s']:>15.1f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**info, "results": results}, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.bench.engine", description=__doc__.split("\n\n")[0]
    )
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
