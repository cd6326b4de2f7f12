"""Side-by-side table of the ResNet-18 runs that resnet18_torch_vs_trt.sh leaves in a folder.

usage: python3 benchmarks/resnet18_report.py WORK_DIR [--json summary.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch_runs = json.loads((args.work / "torch.json").read_text())
    eager = {(r["precision"], r["batch"]): r for r in torch_runs["results"]}
    trt_runs = {}
    for path in sorted(args.work.glob("trt_*.json")):
        run = json.loads(path.read_text())
        trt_runs[path.stem[4:]] = {r["batch"]: r for r in run["results"]}
    batches = sorted({b for _, b in eager})
    print(
        f"ResNet-18 224x224 on {torch_runs['gpu']}: median ms per batch, host to host "
        "(pinned input in, logits out)"
    )
    head = f"{'batch':>5}  {'torch fp32':>10}  {'torch fp16':>10}" + "".join(
        f"  {'trt ' + k:>18}" for k in trt_runs
    )
    print(head)
    rows = []
    for b in batches:
        line = (
            f"{b:>5}  {eager[('fp32', b)]['host_to_host_ms']:>10.3f}  "
            f"{eager[('fp16', b)]['host_to_host_ms']:>10.3f}"
        )
        row = {
            "batch": b,
            "torch_fp32_ms": eager[("fp32", b)]["host_to_host_ms"],
            "torch_fp16_ms": eager[("fp16", b)]["host_to_host_ms"],
            "torch_fp32_device_ms": eager[("fp32", b)]["device_ms"],
            "torch_fp16_device_ms": eager[("fp16", b)]["device_ms"],
        }
        for k, per_batch in trt_runs.items():
            ms = per_batch.get(b, {}).get("latency_median_ms")
            line += f"  {ms:>18.3f}" if ms else f"  {'-':>18}"
            row[f"trt_{k}_ms"] = ms
            row[f"trt_{k}_img_s"] = per_batch.get(b, {}).get("throughput_img_s")
        rows.append(row)
        print(line)
    print("\nspeed-up over torch eager fp32 (same batch, host to host):")
    for row in rows:
        base = row["torch_fp32_ms"]
        parts = [
            f"{k[4:-3]} {base / v:.1f}x"
            for k, v in row.items()
            if k.startswith("trt_") and k.endswith("_ms") and v
        ]
        print(
            f"  batch {row['batch']:>3}: torch fp16 {base / row['torch_fp16_ms']:.1f}x, "
            + ", ".join(parts)
        )
    if args.json:
        args.json.write_text(json.dumps({"torch": torch_runs, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
