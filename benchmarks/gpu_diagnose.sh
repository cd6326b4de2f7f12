#!/usr/bin/env bash
# Where does the GPU pipeline's time go at 100 streams? One burst on the GPU host:
# decode-only scaling, one process with 100 paced streams, and 4 processes x 25 streams.
source benchmarks/gpu_setup.sh
python -m streams.bench.decode --clip $CLIP --sessions 16,64,100,128 --seconds 5 --json $OUT/decode.json 2>&1 | tail -6
python -m streams --log-level warning bench benchmarks/gpu.yaml --duration 8 --streams 100 --paced --clip $CLIP --json $OUT/p100.json 2>&1 | tail -8
for i in 0 1 2 3; do
  python -m streams --log-level warning bench benchmarks/gpu.yaml --duration 8 --streams 25 --paced --clip $CLIP --json $OUT/shard$i.json > $OUT/shard$i.log 2>&1 &
done; wait
tail -n 6 $OUT/shard*.log
for i in 0 1 2 3; do
  python -m streams --log-level warning bench benchmarks/gpu.yaml --duration 8 --streams 32 --clip $CLIP --json $OUT/unpaced$i.json > $OUT/unpaced$i.log 2>&1 &
done; wait
tail -n 5 $OUT/unpaced*.log
