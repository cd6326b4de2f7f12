#!/usr/bin/env bash
# One burst for issues 10 (part 4) and 12 (item 8), after the gpu-kit is unpacked: 128 1080p30
# streams paced and unpaced, side by side in one run, each with a 12 s warm-up (128 NVDEC
# sessions take several seconds to start; a 3 s warm-up measured the start as well):
#   before   a git archive of aa971b6 (the commit issue 10 measured), tracking off
#   after    this tree, tracking off (benchmarks/gpu.yaml)
#   tracking this tree, tracking + two zones + a line on every stream (benchmarks/gpu-tracking.yaml)
#   git archive aa971b6 | tar -x -C .cache/before; bash benchmarks/gpu_final_burst.sh .cache/before
source benchmarks/gpu_setup.sh
BEFORE=$(cd "$1" && pwd); ROOT=$(pwd)
for side in ${SIDES:-before after tracking}; do
  dir=$ROOT config=$ROOT/benchmarks/gpu.yaml
  [ $side = before ] && dir=$BEFORE
  [ $side = tracking ] && config=$ROOT/benchmarks/gpu-tracking.yaml
  echo "== $side ($dir, $(basename $config))"
  (cd "$dir" && python -m streams --log-level warning bench "$config" --gpu --sweep 128 \
     --warmup ${WARMUP:-12} --duration ${DURATION:-6} --clip $CLIP --json "$OUT/bench-$side.json") 2>&1 \
     | grep -v "INFO\|^\s*$" | tail -16
done
