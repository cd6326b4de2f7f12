#!/usr/bin/env bash
# INT8 and builder levels on the GPU host in one burst of at most ~500 s (issue 13, parts 2-3):
#   source /tmp/gpu-kit/py310/env.sh && bash benchmarks/gpu_int8.sh
# A. accuracy: fp16 and int8 (Q/DQ, TensorRT entropy and minmax calibrators) against fp32
#    ONNX Runtime on 200 frames of the sample videos, YOLOv3-tiny, level 0, 256 calibration
#    frames (benchmarks/int8_accuracy.py)                                  -> $OUT/accuracy.json
# B. speed: int8 (Q/DQ) vs fp16 img/s at batch 32 for YOLOv3-tiny and a 640 YOLOv8s-class
#    model (benchmarks/yolo640.py), builder level ${SPEED_LEVEL:-1}          -> $OUT/speed-*.json
# C. builder levels 0, 1, 3 of YOLOv3-tiny fp16 batch 32: cold build, cached rebuild (engine
#    deleted, timing cache kept) and img/s, in what is left of the budget (level 3 last; a
#    level that does not fit is listed as skipped)                        -> $OUT/levels.json
# Every step's log is in $OUT; the summary is printed at the end.
set -u
export STREAMS_CACHE=${STREAMS_CACHE:-/tmp/sc}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BUDGET=${BUDGET:-500}
CACHE=$(mktemp -d /tmp/int8-engines-XXXX)   # fresh: every figure below is a cold build
MODEL=$(python -c "from streams.assets import fetch_assets; print(fetch_assets().model_onnx)")
python benchmarks/yolo640.py /tmp/yolov8s-like-640.onnx > /dev/null
left() { echo $((BUDGET - SECONDS)); }
python - <<'EOF' > "$OUT/versions.txt" 2>&1
import tensorrt, onnxruntime; from engines import cuda
print("tensorrt", tensorrt.__version__, "onnxruntime", onnxruntime.__version__, cuda.device_info(0).name)
EOF

echo "== A. accuracy (budget left $(left) s)"
timeout 190 python benchmarks/int8_accuracy.py --trt --level 0 --frames 256 --eval 200 \
  --cache "$CACHE" --out "$OUT/accuracy.json" > "$OUT/accuracy.log" 2>&1 \
  || echo "accuracy: exit $? (see accuracy.log)"
grep -E "^(ort|trt)-" "$OUT/accuracy.log"

echo "== B. speed int8 vs fp16, level ${SPEED_LEVEL:-1}, batch 32 (budget left $(left) s)"
for m in "$MODEL" /tmp/yolov8s-like-640.onnx; do
  name=$(basename "$m" .onnx)
  timeout $(( $(left) > 90 ? 90 : $(left) )) python benchmarks/trt_levels.py --model "$m" \
    --precisions fp16,int8 --levels ${SPEED_LEVEL:-1} --batch 32 --frames 32 --cache-dir "$CACHE" \
    --deadline-s 85 --min-left 20 --out "$OUT/speed-$name.json" > "$OUT/speed-$name.log" 2>&1 \
    || echo "speed $name: exit $? (see speed-$name.log)"
  grep -E "built in|SKIPPED" "$OUT/speed-$name.log" | sed "s/^/$name /"
done

echo "== C. builder levels, YOLOv3-tiny fp16 batch 32 (budget left $(left) s)"
rest=$(( $(left) - 15 ))
if [ $rest -gt 30 ]; then
  timeout $rest python benchmarks/trt_levels.py --model "$MODEL" --precisions fp16 \
    --levels 0,1,3 --rebuild --batch 32 --cache-dir "$CACHE" --deadline-s $((rest - 5)) \
    --min-left 25 --out "$OUT/levels.json" > "$OUT/levels.log" 2>&1 \
    || echo "levels: exit $? (timed out: the last level did not fit; see levels.log)"
  grep -E "built in|cached rebuild|SKIPPED" "$OUT/levels.log"
  grep -ciE "Myelin error|timing cache will not be used" "$OUT/levels.log" \
    | sed 's/^/TensorRT lines refusing a timing cache: /'
else
  echo "levels: skipped, $rest s left"
fi
rm -rf "$CACHE"
echo "== done in $SECONDS s; $(cat "$OUT/versions.txt")"
