#!/usr/bin/env bash
# RTSP cameras on the GPU host, NVDEC vs OpenCV decoding side by side: one GStreamer RTSP server
# (tests/support/rtsp_server.py) plays the 1080p30 clip as a live camera; `bench --streams N`
# opens N connections to it. Needs the gpu-kit and, where the host has no GStreamer, the RTSP
# server bundle at /tmp/rtsp-kit (tests/support/pack_rtsp_server.sh).
#   bash benchmarks/gpu_rtsp_bench.sh [N ...]          (default: 16 32 64)
source benchmarks/gpu_setup.sh
server_python=${STREAMS_RTSP_PYTHON:-/tmp/rtsp-kit/run}
[ -x "$server_python" ] || server_python=/usr/bin/python3
"$server_python" tests/support/rtsp_server.py --port 8554 --path /cam --file "$CLIP" \
  > "$OUT/rtsp-server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q READY "$OUT/rtsp-server.log" && break; sleep 0.1; done
grep READY "$OUT/rtsp-server.log" || { cat "$OUT/rtsp-server.log"; exit 1; }
export RTSP_URL=rtsp://127.0.0.1:8554/cam
cpu_ticks() { awk '{print $14 + $15}' /proc/$server/stat; }
counts=("$@"); [ ${#counts[@]} -gt 0 ] || counts=(16 32 64)
for n in "${counts[@]}"; do
  for decoder in auto opencv; do
    echo "== $n cameras, decoder $decoder"
    before=$(cpu_ticks); began=$(date +%s.%N)
    DECODER=$decoder python -m streams --log-level warning bench benchmarks/gpu-rtsp.yaml \
      --streams "$n" --duration 8 --warmup 5 --processes auto \
      --json "$OUT/rtsp-$decoder-$n.json" 2>&1 | grep -v "INFO\|^\s*$"
    awk -v t=$(( $(cpu_ticks) - before )) -v hz=$(getconf CLK_TCK) -v a=$began \
      -v b=$(date +%s.%N) 'BEGIN {printf "RTSP server: %.1f CPU s in %.1f s\n", t / hz, b - a}' 
  done
done
