#!/usr/bin/env bash
# The GPU curve of docs/benchmarks.md in one burst on the GPU host (after the gpu-kit is
# unpacked): NVDEC decode-only ceilings over processes, then the sweep with worker processes.
source benchmarks/gpu_setup.sh
python -m streams.bench.decode --clip $CLIP --sessions 32,64,128 --processes 4 --seconds 5 --json $OUT/decode-p4.json 2>&1 | grep -v INFO
python -m streams.bench.decode --clip $CLIP --sessions 64,128 --processes 8 --seconds 5 --json $OUT/decode-p8.json 2>&1 | grep -v INFO
python -m streams --log-level warning bench benchmarks/gpu.yaml --duration 8 --sweep ${SWEEP:-8,32,64,100,128} --clip $CLIP --processes ${PROCS:-auto} --json $OUT/sweep.json 2>&1 | grep -v "INFO\|^\s*$"
