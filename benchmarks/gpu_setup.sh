# Sourced by the gpu_*.sh bursts: the kit's Python, the asset cache, $OUT, the 1080p30 clip
# ($CLIP, made once) and the engine of benchmarks/gpu.yaml (built once).
set -u
source /tmp/gpu-kit/py310/env.sh
export STREAMS_CACHE=${STREAMS_CACHE:-/tmp/sc}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
CLIP=/tmp/clip1080.mp4
[ -f $CLIP ] || python -m streams.bench.decode --make-clip $CLIP | tail -1
python -m streams --log-level warning build-engine benchmarks/gpu.yaml 2>&1 | tail -1
