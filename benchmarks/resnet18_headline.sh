#!/usr/bin/env bash
# The seed article's headline (issue 13, part 4): ResNet-18, TensorRT vs PyTorch eager fp32,
# host to host, with an engine whose one profile is optimised for the batch it is timed at.
#
# Per batch B in $BATCHES: torch eager (fp32, fp16; benchmarks/resnet18_torch.py); TensorRT in
# each of $PRECISIONS (fp16, int8: the Q/DQ path calibrated on 32 sample-video frames) built for
# profile [1, B, B] at builder level $LEVEL, through the slot API with CUDA graphs
# (streams.bench.engine) and as the bare loop (benchmarks/trt_bare_loop.py: execute alone,
# GPU time per batch back to back, and pinned copy in + execute + copy out). Batch 1 fp16 is
# also built at level 0, so the level's share is visible. Build times are the `setup_s` of each run.
#
# usage: benchmarks/resnet18_headline.sh [OUT_DIR]     (LEVEL=3 BATCHES="1 8 32" PRECISIONS="fp16 int8" LEVEL0_ROW=1 ITERS=1000)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/resnet18-headline}}
work=${WORK:-/tmp/resnet18-headline-work}
level=${LEVEL:-3}
batches=${BATCHES:-1 8 32}
iters=${ITERS:-1000}
precisions=${PRECISIONS:-fp16 int8}
level0_row=${LEVEL0_ROW:-1}  # 0: no extra fp16 batch-1 build at level 0
torch_py=${TORCH_PYTHON:-/opt/torch/.venv/bin/python3}
trt_env=${TRT_ENV:-/tmp/gpu-kit/py310/env.sh}
mkdir -p "$out" "$work"

echo "== PyTorch eager ($torch_py)"
"$torch_py" benchmarks/resnet18_torch.py --onnx "$work/resnet18.onnx" \
  --batch "$(tr ' ' ',' <<<"$batches")" --iters "$iters" --json "$out/torch.json"

# shellcheck disable=SC1090
source "$trt_env"
run_trt() {  # precision batch level
  local p=$1 b=$2 l=$3 tag="$1_b$2_l$3"
  echo "== TensorRT $p, profile [1, $b, $b], level $l"
  python3 -m streams.bench.engine --model "$work/resnet18.onnx" --backend tensorrt \
    --precision "$p" --batch "$b" --max-batch "$b" --opt-level "$l" --iters "$iters" \
    --cuda-graphs --cache-dir "$work/engines" --json "$out/trt_${tag}.json"
  python3 benchmarks/trt_bare_loop.py --model "$work/resnet18.onnx" --precision "$p" \
    --batch "$b" --max-batch "$b" --opt-level "$l" --iters "$iters" \
    --cache-dir "$work/engines" --json "$out/bare_${tag}.json"
}
for p in $precisions; do
  for b in $batches; do
    run_trt "$p" "$b" "$level"
    if [ "$level0_row" = 1 ] && [ "$p" = fp16 ] && [ "$b" = 1 ] && [ "$level" != 0 ]; then run_trt fp16 1 0; fi
  done
done

echo "== headline"
python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
torch = {(r["precision"], r["batch"]): r for r in json.loads((out / "torch.json").read_text())["results"]}
rows = []
for path in sorted(out.glob("trt_*_b*_l*.json")):
    run = json.loads(path.read_text())
    bare = json.loads((out / path.name.replace("trt_", "bare_")).read_text())["results"][0]
    r = run["results"][0]
    base = torch[("fp32", r["batch"])]["host_to_host_ms"]
    rows.append({
        "precision": run["precision"], "batch": r["batch"], "level": run["opt_level"], "setup_s": run["setup_s"],
        "torch_fp32_ms": base, "torch_fp16_ms": torch[("fp16", r["batch"])]["host_to_host_ms"],
        "trt_graphs_ms": r["latency_median_ms"], "speedup": round(base / r["latency_median_ms"], 2),
        "bare_exec_ms": bare["exec_latency_ms"], "bare_copy_exec_ms": bare["copy_latency_ms"],
        "gpu_ms_per_batch": round(r["batch"] * 1e3 / bare["exec_img_s"], 4),
        "trt_img_s": r["throughput_img_s"],
    })
print(f"{'prec':>4} {'batch':>5} {'lvl':>3} {'build s':>7} {'torch32':>8} {'trt+graph':>9} {'x':>6} "
      f"{'bare ex':>7} {'bare cp':>7} {'gpu ms':>7} {'img/s':>9}")
for w in rows:
    print(f"{w['precision']:>4} {w['batch']:>5} {w['level']:>3} {w['setup_s']:>7.1f} {w['torch_fp32_ms']:>8.3f} "
          f"{w['trt_graphs_ms']:>9.3f} {w['speedup']:>6.1f} {w['bare_exec_ms']:>7.3f} "
          f"{w['bare_copy_exec_ms']:>7.3f} {w['gpu_ms_per_batch']:>7.4f} {w['trt_img_s']:>9.0f}")
(out / "headline.json").write_text(json.dumps(rows, indent=2) + "\n")
PY
