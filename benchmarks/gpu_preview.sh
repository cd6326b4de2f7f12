#!/usr/bin/env bash
# The browser view's cost on the GPU path (issue 14, item 5), on the GPU host after the
# gpu-kit is unpacked: `streams run` on 100 streams of the 1080p30 clip (TensorRT, NVDEC,
# worker processes as `auto` picks), nobody watching vs every stream watched (the worst case:
# the whole grid on screen, preview.fps 5 each = 500 pictures/s), alternating in one run.
#   bash benchmarks/gpu_preview.sh            # paced cameras (realtime), then unpaced
# STREAMS (100), WATCH (all), PHASE (20 s), ROUNDS (3), PACES ("realtime none").
source benchmarks/gpu_setup.sh
for pace in ${PACES:-realtime none}; do
  echo "== pace $pace"
  python benchmarks/preview_cost.py --base benchmarks/gpu.yaml --clip $CLIP \
    --streams ${STREAMS:-100} ${WATCH:+--watch $WATCH} --pace $pace \
    --warmup ${WARMUP:-20} --phase ${PHASE:-20} --rounds ${ROUNDS:-3} \
    --json "$OUT/preview-$pace.json" 2>&1 | grep -v "INFO\|^\s*$" | tail -8
done
