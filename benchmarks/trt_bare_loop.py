"""Bare TensorRT loop: the reference that ``streams.bench.engine`` is compared against.

One execution context, one CUDA stream, device buffers only: ``execute_async_v3`` in a loop,
without the slot API, host copies or Python bookkeeping. It loads the same cached engine as
``python -m streams.bench.engine`` given the same options, so the two measure one engine.

Per batch size it reports:
  exec latency   one execute, then a stream sync (median ms);
  exec img/s     --iters executes queued back to back, one sync at the end;
  copy latency   pinned host input -> device, execute, device -> pinned host output, sync:
                 the host-to-host work one slot does per batch.

usage: python benchmarks/trt_bare_loop.py --model M.onnx --precision fp16 --max-batch 64 \
           --batch 1,8,32,64 --opt-level 0 --iters 500 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import cuda
from engines.options import EngineOptions
from engines.tensorrt_build import import_tensorrt, load_cuda_engine, trt_logger
from streams.bench.engine import sample_calibration


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    parser.add_argument("--calibration-frames", type=int, default=32, help="int8 (speed only)")
    parser.add_argument("--batch", default="1,8,32")
    parser.add_argument("--max-batch", type=int, default=0)
    parser.add_argument(
        "--contexts",
        type=int,
        default=EngineOptions().contexts,
        help="only selects the cached engine (profile copies); one is used",
    )
    parser.add_argument("--opt-level", type=int, default=0)
    parser.add_argument("--iters", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--cache-dir", type=Path, default=EngineOptions().cache_dir)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    batches = sorted({int(b) for b in args.batch.split(",")})
    options = EngineOptions(
        backend="tensorrt",
        max_batch=args.max_batch or batches[-1],
        precision=args.precision,
        contexts=args.contexts,
        builder_optimization_level=args.opt_level,
        cache_dir=args.cache_dir,
        calibration_set=(
            sample_calibration(args.model, args.calibration_frames)
            if args.precision == "int8"
            else None
        ),
    )
    trt = import_tensorrt()
    cuda.set_device(0)
    runtime = trt.Runtime(trt_logger())
    engine, built = load_cuda_engine(args.model, options, runtime)
    context = engine.create_execution_context()
    stream = cuda.Stream()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inp = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
    outs = [n for n in names if n != inp]
    in_shape = tuple(engine.get_tensor_shape(inp))
    context.set_input_shape(inp, (options.max_batch, *in_shape[1:]))
    buffers = {}
    for name in names:
        shape = tuple(context.get_tensor_shape(name))
        dtype = np.float16 if engine.get_tensor_dtype(name) == trt.DataType.HALF else np.float32
        host = cuda.PinnedBuffer(shape, dtype)
        host.array[...] = np.random.default_rng(0).random(shape).astype(dtype)
        dev = cuda.DeviceBuffer(host.nbytes)
        context.set_tensor_address(name, dev.ptr)
        buffers[name] = (host, dev, host.nbytes // shape[0])
    results = []
    for batch in batches:
        context.set_input_shape(inp, (batch, *in_shape[1:]))

        def execute() -> None:
            if not context.execute_async_v3(stream.handle):
                raise SystemExit("execute_async_v3 failed")

        def with_copies(batch: int = batch) -> None:
            host, dev, row = buffers[inp]
            cuda.memcpy_htod_async(dev.ptr, host.ptr, batch * row, stream)
            execute()
            for name in outs:
                host, dev, row = buffers[name]
                cuda.memcpy_dtoh_async(host.ptr, dev.ptr, batch * row, stream)

        for _ in range(args.warmup):
            with_copies()
        stream.synchronize()
        exec_ms, copy_ms = [], []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            execute()
            stream.synchronize()
            exec_ms.append((time.perf_counter() - t0) * 1e3)
        for _ in range(args.iters):
            t0 = time.perf_counter()
            with_copies()
            stream.synchronize()
            copy_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        for _ in range(args.iters):
            execute()
        stream.synchronize()
        exec_img_s = batch * args.iters / (time.perf_counter() - t0)
        results.append(
            {
                "batch": batch,
                "exec_latency_ms": round(statistics.median(exec_ms), 3),
                "exec_img_s": round(exec_img_s, 1),
                "copy_latency_ms": round(statistics.median(copy_ms), 3),
                "copy_img_s_1_at_a_time": round(batch * 1e3 / statistics.median(copy_ms), 1),
            }
        )
    print(
        f"bare TensorRT {trt.__version__} loop: {args.model.name} {args.precision} "
        f"({'built' if built else 'cached'} engine), {cuda.device_info(0).name}"
    )
    print(f"{'batch':>5}  {'exec ms':>8}  {'exec img/s':>10}  {'copy+exec ms':>12}")
    for r in results:
        print(
            f"{r['batch']:>5}  {r['exec_latency_ms']:>8.3f}  {r['exec_img_s']:>10.1f}  "
            f"{r['copy_latency_ms']:>12.3f}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model": str(args.model),
                    "precision": args.precision,
                    "tensorrt": trt.__version__,
                    "results": results,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
