#!/usr/bin/env bash
# 100 paced 1080p30 cameras on the GPU host: worker processes x CUDA wait mode.
# (/tmp/gpu-wait20.yaml, max_wait_ms 20, was tried once in an earlier version of this matrix:
#  100 streams over 3 processes, 1,948 frames/s and p99 93 ms against 2,215 and 48 at 10 ms.)
source benchmarks/gpu_setup.sh
sed 's/^  cache_dir:.*/  cache_dir: \/tmp\/streams-engines\nbatch:\n  max_wait_ms: 20/' benchmarks/gpu.yaml > /tmp/gpu-wait20.yaml
run() {  # name, env, config, extra args
  local name=$1 env=$2 cfg=$3; shift 3
  env $env python -m streams --log-level warning bench $cfg --duration 8 --streams ${N:-100} --clip $CLIP --json $OUT/$name.json "$@" 2>&1 | grep "pipeline    \|threads\|overload"
  python - "$OUT/$name.json" "$name" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["pipeline"]
print(f"== {sys.argv[2]}: {r['fps']:.0f} fps of {r['offered_fps']:.0f}, p99 {r['latency_p99_ms']:.1f} ms, drops {r['dropped']}, GPU {r.get('gpu_util_pct')}%, parts {r.get('latency_parts_p50_p99_ms')}", flush=True)
PY
}
for P in ${PROCS:-2 3 4 5}; do run paced-$P "X=1" benchmarks/gpu.yaml --paced --processes $P; done
N=128 run paced128-4 "X=1" benchmarks/gpu.yaml --paced --processes 4
N=128 run paced128-6 "X=1" benchmarks/gpu.yaml --paced --processes 6
run paced-3-blocking "STREAMS_CUDA_SYNC=blocking" benchmarks/gpu.yaml --paced --processes 3
