"""TensorRT build time, cached-rebuild time and speed per builder level and precision.

For each (precision, level): a cold build (this network's timing cache and engine removed
first, so the build tunes from nothing), then, with ``--rebuild``, the engine file alone is
removed and built again: that build reads the timing cache the first one wrote, and what
TensorRT did with it (bytes loaded, refused and why, whether its own cache read back) is
reported beside the two times. Speed: ``execute_async_v3`` on device buffers, ``--iters``
batches of ``--batch`` queued back to back with one sync (img/s), the bare engine, as
benchmarks/trt_bare_loop.py measures it.

int8 calibrates on the sample videos (``--frames``, preprocessed as at run time); its speed
does not depend on which frames. ``int8:minmax`` in ``--precisions`` picks the int8 method for
that step (else ``--int8-method``), so both int8 paths and fp16 run side by side in one run;
``int8:minmax+tail`` builds it with the decoding tail pinned to fp16 (engines/int8_tail.py).
A step is skipped, and listed as skipped, when fewer than
``--min-left`` seconds remain before ``--deadline-s``.

    python benchmarks/trt_levels.py --model yolov3-tiny.onnx --precisions fp16 \\
        --levels 0,1,3 --rebuild --batch 32 --out levels.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import cuda, engine_layers, tensorrt_build  # noqa: E402
from engines.options import EngineOptions  # noqa: E402
from streams.bench.engine import sample_calibration  # noqa: E402


def speed(engine, trt, batch: int, iters: int) -> float:
    """img/s of ``iters`` back-to-back executes at ``batch`` on one context and stream."""
    context = engine.create_execution_context()
    stream = cuda.Stream()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inp = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
    shape = tuple(engine.get_tensor_shape(inp))
    if shape[0] == -1:
        context.set_input_shape(inp, (batch, *shape[1:]))
    buffers = []
    for name in names:
        dims = tuple(context.get_tensor_shape(name))
        buf = cuda.DeviceBuffer(int(np.prod(dims)) * 4)  # 4 bytes covers fp32/fp16/int8 I/O
        buffers.append(buf)
        context.set_tensor_address(name, buf.ptr)
    for _ in range(20):
        context.execute_async_v3(stream.handle)
    stream.synchronize()
    started = time.perf_counter()
    for _ in range(iters):
        context.execute_async_v3(stream.handle)
    stream.synchronize()
    elapsed = time.perf_counter() - started
    for buf in buffers:
        buf.free()
    stream.destroy()
    return batch * iters / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--precisions", default="fp16")
    parser.add_argument("--levels", default="0,1,3")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--frames", type=int, default=256, help="int8 calibration frames")
    parser.add_argument("--int8-method", default="qdq")
    parser.add_argument("--rebuild", action="store_true", help="also time a cached rebuild")
    parser.add_argument("--cache-dir", type=Path, default=EngineOptions().cache_dir)
    parser.add_argument("--deadline-s", type=float, default=1e9, help="stop starting steps")
    parser.add_argument("--min-left", type=float, default=60.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    began = time.monotonic()
    trt = tensorrt_build.import_tensorrt()
    cuda.set_device(0)
    runtime = trt.Runtime(tensorrt_build.trt_logger())
    calibration = sample_calibration(args.model, args.frames) if "int8" in args.precisions else None
    rows, skipped = [], []
    result = {
        "model": args.model.name,
        "tensorrt": trt.__version__,
        "gpu": cuda.device_info(0).name,
        "batch": args.batch,
        "rows": rows,
        "skipped": skipped,
    }

    def left() -> float:
        return args.deadline_s - (time.monotonic() - began)

    def save() -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2) + "\n")

    for token in args.precisions.split(","):
        precision, _, name = token.partition(":")
        name = name or args.int8_method  # e.g. minmax+tail
        method, tail = name.removesuffix("+tail"), name.endswith("+tail")
        for level in [int(v) for v in args.levels.split(",")]:
            step = f"{precision}{f' {name}' if precision == 'int8' else ''} level {level}"
            if left() < args.min_left:
                skipped.append(f"{step}: {left():.0f} s left of the budget")
                print(f"SKIPPED {skipped[-1]}", flush=True)
                continue
            options = EngineOptions(
                backend="tensorrt",
                max_batch=args.batch,
                precision=precision,
                contexts=1,
                builder_optimization_level=level,
                cache_dir=args.cache_dir,
                int8_method=method,
                keep_tail_fp16=tail,
                calibration_set=calibration if precision == "int8" else None,
            )
            entry = tensorrt_build.cache_entry(args.model, options)
            entry.engine_path.unlink(missing_ok=True)
            entry.sidecar_path.unlink(missing_ok=True)
            for old in Path(args.cache_dir).expanduser().glob("timing-*.cache"):
                old.unlink()  # cold: nothing tuned before (every network's cache, to be sure)
            row: dict = {"precision": precision, "level": level}
            if precision == "int8":
                row["int8_method"] = name
            started = time.perf_counter()
            engine, _ = tensorrt_build.load_cuda_engine(args.model, options, runtime)
            row["build_s"] = round(time.perf_counter() - started, 1)
            row["timing_cache_first"] = dict(tensorrt_build.timing_cache_status)
            row["img_s"] = round(speed(engine, trt, args.batch, args.iters))
            row.update(engine_layers.report(engine_layers.inspect(trt, engine, args.batch)))
            del engine
            print(f"{step}: built in {row['build_s']} s, {row['img_s']} img/s", flush=True)
            print(f"{step}: layers by precision: {engine_layers.describe(row['layers'])}")
            if args.rebuild:
                if left() < row["build_s"] + 10:
                    row["rebuild"] = f"skipped: {left():.0f} s left"
                else:
                    entry.engine_path.unlink(missing_ok=True)
                    entry.sidecar_path.unlink(missing_ok=True)
                    started = time.perf_counter()
                    engine, _ = tensorrt_build.load_cuda_engine(args.model, options, runtime)
                    row["rebuild_s"] = round(time.perf_counter() - started, 1)
                    row["timing_cache_rebuild"] = dict(tensorrt_build.timing_cache_status)
                    row["rebuild_img_s"] = round(speed(engine, trt, args.batch, args.iters))
                    del engine
                    print(
                        f"{step}: cached rebuild in {row['rebuild_s']} s "
                        f"({row['rebuild_img_s']} img/s); timing cache "
                        f"{row['timing_cache_rebuild']}",
                        flush=True,
                    )
            rows.append(row)
            save()
    save()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
