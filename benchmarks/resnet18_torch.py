"""ResNet-18 with PyTorch eager on the GPU: export it to ONNX, then time eager inference.

Runs under a Python that has torch and torchvision (the GPU host's own python3). The model
is torchvision's resnet18 with random weights (``weights=None``: nothing is downloaded);
speed does not depend on the weight values. The ONNX export has a dynamic batch dimension
and opset 17 (the newest TensorRT 8.6 reads).

Two timings per precision and batch size, both with ``torch.backends.cudnn.benchmark``:
  device:  input already on the GPU, one forward, synchronize (what articles usually time);
  host:    pinned host input -> GPU, forward, output -> host, synchronize (what the
           streams slot API does per batch, so it compares with ``streams.bench.engine``).

usage: python3 benchmarks/resnet18_torch.py --onnx /tmp/resnet18.onnx --batch 1,8,32 \
           --json torch.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torchvision


def export(model: torch.nn.Module, path: Path) -> str:
    """Export with a dynamic batch; the TorchScript exporter first, the dynamo one if absent."""
    example = torch.randn(1, 3, 224, 224, device="cuda")
    kwargs = {"input_names": ["input"], "output_names": ["logits"], "opset_version": 17}
    try:
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            **kwargs,
        )
        return "torchscript"
    except (TypeError, RuntimeError) as err:
        print(f"TorchScript export unavailable ({err}); using the dynamo exporter")
    batch = torch.export.Dim("batch", min=1, max=256)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        dynamic_shapes={"x": {0: batch}},
        external_data=False,
        **kwargs,
    )
    return "dynamo"


def time_ms(fn, iters: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--batch", default="1,8,32")
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    model = torchvision.models.resnet18(weights=None).eval().cuda()
    args.onnx.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        exporter = export(model, args.onnx)
    print(f"exported {args.onnx} ({exporter} exporter, {args.onnx.stat().st_size / 2**20:.1f} MiB)")
    results = []
    for precision in ("fp32", "fp16"):
        dtype = torch.float32 if precision == "fp32" else torch.float16
        net = torchvision.models.resnet18(weights=None).eval().cuda().to(dtype)
        for batch in sorted({int(b) for b in args.batch.split(",")}):
            x_dev = torch.randn(batch, 3, 224, 224, device="cuda", dtype=dtype)
            x_host = torch.randn(batch, 3, 224, 224, dtype=dtype).pin_memory()
            out_host = torch.empty(batch, 1000, dtype=dtype).pin_memory()

            def on_device(net=net, x=x_dev) -> None:
                net(x)

            def host_to_host(net=net, x=x_host, out=out_host) -> None:
                out.copy_(net(x.cuda(non_blocking=True)), non_blocking=True)

            with torch.inference_mode():
                dev_ms = statistics.median(time_ms(on_device, args.iters, args.warmup))
                host_ms = statistics.median(time_ms(host_to_host, args.iters, args.warmup))
            results.append(
                {
                    "precision": precision,
                    "batch": batch,
                    "device_ms": round(dev_ms, 3),
                    "host_to_host_ms": round(host_ms, 3),
                }
            )
            print(
                f"torch eager {precision} batch {batch:>3}: {dev_ms:.3f} ms on device, "
                f"{host_ms:.3f} ms host to host"
            )
    info = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "cudnn": torch.backends.cudnn.version(),
        "exporter": exporter,
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(info, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
