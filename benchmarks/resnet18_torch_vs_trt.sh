#!/usr/bin/env bash
# ResNet-18 (torchvision, random weights) side by side on one GPU, in one run:
#   1. PyTorch eager (fp32, fp16) under a Python with torch, which also exports the ONNX;
#   2. TensorRT through streams.bench.engine (fp32, fp16; with and without CUDA graphs),
#      engines built at optimization level 0, plus the bare TensorRT loop;
#   3. a side-by-side table (benchmarks/resnet18_report.py).
#
# usage: benchmarks/resnet18_torch_vs_trt.sh [OUT_DIR]
#   TORCH_PYTHON  Python with torch + torchvision (default: python3 on PATH before TRT_ENV)
#   TRT_ENV       script to source for the TensorRT Python (default: the GPU kit's env.sh;
#                 set it to /dev/null when the current python3 has tensorrt)
#   BATCHES       default 1,8,32        ITERS  default 500
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/resnet18-bench}}
work=${WORK:-/tmp/resnet18-bench-work}
batches=${BATCHES:-1,8,32}
iters=${ITERS:-500}
torch_py=${TORCH_PYTHON:-$(command -v python3)}
trt_env=${TRT_ENV:-/tmp/gpu-kit/py310/env.sh}
mkdir -p "$out" "$work"
max_batch=$(tr ',' '\n' <<<"$batches" | sort -n | tail -1)

echo "== PyTorch eager ($torch_py)"
"$torch_py" benchmarks/resnet18_torch.py --onnx "$work/resnet18.onnx" --batch "$batches" \
  --iters "$iters" --json "$work/torch.json"

echo "== TensorRT"
(
  # shellcheck disable=SC1090
  source "$trt_env"
  common=(--model "$work/resnet18.onnx" --backend tensorrt --batch "$batches"
          --max-batch "$max_batch" --opt-level 0 --iters "$iters" --cache-dir "$work/engines")
  for precision in fp32 fp16; do
    python3 -m streams.bench.engine "${common[@]}" --precision "$precision" \
      --json "$work/trt_${precision}.json"
    python3 -m streams.bench.engine "${common[@]}" --precision "$precision" --cuda-graphs \
      --json "$work/trt_${precision}_graphs.json"
    python3 benchmarks/trt_bare_loop.py --model "$work/resnet18.onnx" --precision "$precision" \
      --batch "$batches" --max-batch "$max_batch" --opt-level 0 --iters "$iters" \
      --cache-dir "$work/engines" --json "$work/bare_${precision}.json"
  done
)

echo "== side by side"
"$torch_py" benchmarks/resnet18_report.py "$work" --json "$out/resnet18_summary.json"
