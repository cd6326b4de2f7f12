#!/usr/bin/env bash
# The GPU tests in one burst on the GPU host, after the gpu-kit is unpacked (DEVELOPERS.md).
# The kit must hold every runtime dependency of pyproject.toml: build it with the ones its
# defaults lack: `../shared/gpu-kit/build av orjson rich scipy pyte pytest-timeout motmetrics
# fastapi uvicorn httpx websockets paho-mqtt redis nats-py` (2026-12-03; 2026-12-02: a kit
# built with `av` alone had no orjson, and every test that imports the bus failed to collect).
# The RTSP ones need GStreamer's RTSP server: where the host has none, unpack the bundle made by
# tests/support/pack_rtsp_server.sh at /tmp/rtsp-kit first; they then must run, not skip.
#   bash benchmarks/gpu_tests.sh                      # every test marked gpu
#   bash benchmarks/gpu_tests.sh tests/test_gpu_rtsp.py -x
set -u
source /tmp/gpu-kit/py310/env.sh
export STREAMS_CACHE=${STREAMS_CACHE:-/tmp/sc}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if [ -x /tmp/rtsp-kit/run ]; then
  export STREAMS_RTSP_PYTHON=/tmp/rtsp-kit/run STREAMS_REQUIRE_RTSP=1
fi
[ $# -gt 0 ] || set -- tests
# motmetrics (the tracker's CPU tests) is not in the kit; its modules hold no gpu test.
python -c "import motmetrics" 2>/dev/null \
  || set -- "$@" --ignore=tests/processors/test_track.py --ignore=tests/streams/bench/test_tracker_cli.py
# The bridges' clients (redis, nats-py, paho-mqtt) are not in the kit either, and their test
# modules import them at the top (2026-12-03: a collection error there stopped a whole half).
python -c "import redis, nats, paho.mqtt" 2>/dev/null || set -- "$@" --ignore=tests/streams/sinks
python -m pytest -m gpu -q -s -p no:cacheprovider --durations=20 "$@" > "$OUT/gpu-tests.log" 2>&1
rc=$?
grep -E "passed|failed|error|PASSED|FAILED|ERROR|SKIPPED|skipped" "$OUT/gpu-tests.log" | tail -40
exit $rc
