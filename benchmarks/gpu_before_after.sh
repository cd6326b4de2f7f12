#!/usr/bin/env bash
# `bench --gpu` of an older commit and of this tree, side by side in one burst on the GPU host
# (after the gpu-kit is unpacked). The older tree travels as an ignored folder:
#   git archive aa971b6 | tar -x -C .cache/before        # here, then carry .cache/before
#   bash benchmarks/gpu_before_after.sh .cache/before 64,128
# SIDES picks the runs, in order: before, after, after-blocking (this tree with
# STREAMS_CUDA_SYNC=blocking: threads waiting for the GPU sleep instead of spinning), tracking
# (this tree with tracking, two zones and a line per stream: benchmarks/gpu-tracking.yaml).
# WARMUP (default 12 s: a hundred NVDEC sessions take seconds to start) and DURATION per row.
source benchmarks/gpu_setup.sh
BEFORE=$(cd "$1" && pwd); SWEEP=${2:-64,128}; ROOT=$(pwd)
for side in ${SIDES:-before after after-blocking}; do
  dir=$ROOT config=$ROOT/benchmarks/gpu.yaml sync=
  [ $side = before ] && dir=$BEFORE
  [ $side = after-blocking ] && sync=blocking
  [ $side = tracking ] && config=$ROOT/benchmarks/gpu-tracking.yaml
  echo "== $side ($dir, $(basename $config))"
  (cd "$dir" && STREAMS_CUDA_SYNC=$sync python -m streams --log-level warning bench "$config" --gpu \
     --warmup ${WARMUP:-12} --duration ${DURATION:-6} --sweep "$SWEEP" --clip $CLIP --json "$OUT/bench-$side.json") 2>&1 \
     | grep -v "INFO\|^\s*$" | tail -24
done
