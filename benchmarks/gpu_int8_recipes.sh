#!/usr/bin/env bash
# Which Q/DQ recipe keeps most of fp32 on frames calibration never read (issue 13, part 2), in
# one burst on the GPU host, the runs side by side:
#   source /tmp/gpu-kit/py310/env.sh && bash benchmarks/gpu_int8_recipes.sh
# Every run: 128 calibration frames of the two sample videos, 200 scored frames calibration did
# not read, builder level 0, int8 = the qdq path with one change from the default recipe
# (ONNX Runtime MinMax, every Conv quantized)                          -> $OUT/<recipe>.json
set -u
export STREAMS_CACHE=${STREAMS_CACHE:-/tmp/sc}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LIMIT=${LIMIT:-420}
start=$SECONDS
python benchmarks/yolo640_trained.py /tmp/y640.onnx > "$OUT/y640.log" 2>&1
run() {  # name, then int8_accuracy.py's arguments
  local name=$1; shift
  timeout "$LIMIT" python benchmarks/int8_accuracy.py --trt --level 0 --frames 128 --eval 200 \
    --methods qdq --cache "$(mktemp -d)" --out "$OUT/$name.json" "$@" > "$OUT/$name.log" 2>&1 \
    || echo "$name: exit $? (see $name.log)"
}
run first-float --first-float &
run first-head-float --first-float --head-float &
run percentile --qdq-method Percentile &
run entropy --qdq-method Entropy &
run 640-first-float --model /tmp/y640.onnx --first-float &
wait
echo "elapsed $((SECONDS - start)) s"
for name in first-float first-head-float percentile entropy 640-first-float; do
  echo "== $name"; grep -E "^(ort|trt)-" "$OUT/$name.log"
done
