#!/usr/bin/env bash
# Where the CPU of the GPU pipeline goes (issue 10, part 4), in one burst on the GPU host:
#  1. decode-only CPU per frame (streams.bench.decode): bare PyNvVideoCodec (--raw) against the
#     project's reader (+ its surface copy and events), unpaced and paced at 30 fps, one Python
#     thread per session against several sessions per thread;
#  2. a py-spy profile (native frames included) of the paced 128-stream pipeline, folded
#     stacks in $OUT/pyspy-paced.txt (needs py-spy in the gpu-kit: build it with py-spy).
#   bash benchmarks/gpu_cpu_profile.sh            # after the gpu-kit is unpacked
source benchmarks/gpu_setup.sh
SECONDS_EACH=${SECONDS_EACH:-5}
decode() {  # name, then streams.bench.decode arguments
  local name=$1; shift
  echo "== decode $name: $*"
  python -m streams.bench.decode --clip $CLIP --seconds $SECONDS_EACH --json "$OUT/decode-$name.json" "$@" 2>&1 \
    | grep -v INFO | tail -2
}
decode raw-unpaced --sessions 32 --processes 4 --raw
decode reader-unpaced --sessions 32 --processes 4
decode raw-paced --sessions 128 --processes 6 --raw --fps 30
decode reader-paced --sessions 128 --processes 6 --fps 30
decode reader-paced-8-per-thread --sessions 128 --processes 6 --fps 30 --per-thread 8
PYSPY=$(command -v py-spy || find /tmp/gpu-kit -name py-spy -type f -perm -u+x | head -1)
if [ "${PROFILE:-1}" = 1 ] && [ -n "$PYSPY" ]; then
  echo "== py-spy: 128 paced streams through the pipeline (the whole run; filter by thread function)"
  "$PYSPY" record --subprocesses --native --rate ${RATE:-25} --format raw --output "$OUT/pyspy-paced.txt" \
    -- python -m streams --log-level warning bench benchmarks/gpu.yaml \
    --streams 128 --paced --clip $CLIP --processes auto --warmup 12 --duration 10 \
    --json "$OUT/bench-paced-profiled.json" 2>&1 | grep -v "INFO\|^\s*$" | tail -12
fi
[ -f "$OUT/pyspy-paced.txt" ] && gzip -f "$OUT/pyspy-paced.txt"; true
