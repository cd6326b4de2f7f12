"""Can two execution contexts share optimization profile 0 of one dynamic-batch engine?

The answer decides whether the TensorRT engine builds one profile copy per context
(engines.tensorrt_build.profile_copies). Builds a small conv net with ONE profile, creates two
contexts, asks the second for profile 0, runs both at once on two streams with different
inputs and compares each with a one-context run.

Seen on an H100 with TensorRT 8.6.0: the second context's request fails with "Profile 0 has
been chosen by another IExecutionContext" and the process then dies (segmentation fault), so
the answer on 8.6 is no: one profile copy per context.

usage: python benchmarks/trt_shared_profile_probe.py [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import cuda
from engines.options import EngineOptions
from engines.tensorrt_build import import_tensorrt, load_cuda_engine, trt_logger


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.mkdtemp()))
    args = parser.parse_args()
    from tests.engines.test_tensorrt import make_tiny_onnx

    trt = import_tensorrt()
    cuda.set_device(0)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    model = make_tiny_onnx(args.cache_dir / "probe.onnx")
    options = EngineOptions(
        max_batch=4,
        precision="fp32",
        contexts=1,
        builder_optimization_level=0,
        cache_dir=args.cache_dir,
    )
    engine, _ = load_cuda_engine(model, options, trt.Runtime(trt_logger()))
    print(f"TensorRT {trt.__version__}: engine with {engine.num_optimization_profiles} profile(s)")
    rng = np.random.default_rng(0)
    runs = []
    for i in range(2):
        ctx = engine.create_execution_context()
        stream = cuda.Stream()
        ok = ctx.set_optimization_profile_async(0, stream.handle)
        print(
            f"context {i}: set_optimization_profile_async(0) -> {ok}; "
            f"errors: {list(trt_logger().errors)}"
        )
        x = cuda.PinnedBuffer((4, 3, 64, 64), np.float32)
        x.array[...] = rng.random(x.shape, dtype=np.float32)
        y = cuda.PinnedBuffer((4, 4 * 64 * 64), np.float32)
        dx, dy = cuda.DeviceBuffer(x.nbytes), cuda.DeviceBuffer(y.nbytes)
        if ok:  # touching a context without a profile crashes TensorRT 8.6
            ok = ctx.set_input_shape("images", (4, 3, 64, 64))
            ctx.set_tensor_address("images", dx.ptr)
            ctx.set_tensor_address("output", dy.ptr)
        runs.append((ctx, stream, x, y, dx, dy, ok))
    for ctx, stream, x, y, dx, dy, ok in runs:
        if ok:
            cuda.memcpy_htod_async(dx.ptr, x.ptr, x.nbytes, stream)
            print("execute_async_v3 ->", ctx.execute_async_v3(stream.handle))
            cuda.memcpy_dtoh_async(y.ptr, dy.ptr, y.nbytes, stream)
    for _, stream, *_ in runs:
        stream.synchronize()
    ctx0, stream0, *_ = runs[0]
    for i, (_, _, x, y, dx, _, ok) in enumerate(runs):
        if not ok:
            continue
        ref = cuda.PinnedBuffer(y.shape, np.float32)
        cuda.memcpy_htod_async(dx.ptr, x.ptr, x.nbytes, stream0)
        ctx0.set_tensor_address("images", dx.ptr)
        out = cuda.DeviceBuffer(ref.nbytes)
        ctx0.set_tensor_address("output", out.ptr)
        ctx0.execute_async_v3(stream0.handle)
        cuda.memcpy_dtoh_async(ref.ptr, out.ptr, ref.nbytes, stream0)
        stream0.synchronize()
        print(
            f"context {i} concurrent vs alone: max abs diff "
            f"{float(np.abs(ref.array - y.array).max()):.2e}"
        )
    shared = all(r[-1] for r in runs)
    print("RESULT: contexts", "CAN" if shared else "CANNOT", "share profile 0 on this TensorRT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
