"""Does a batch's result depend on which slot (execution context, optimization profile) ran it?

The same input through every slot of one TensorRT engine, at a few batch sizes, twice each;
prints whether each slot's output is bit-identical to slot 0's and to its own first run.

    python benchmarks/slot_determinism_probe.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from engines.options import EngineOptions
    from engines.tensorrt_engine import TensorRTEngine
    from streams.assets import fetch_assets

    options = EngineOptions(
        backend="tensorrt",
        max_batch=8,
        contexts=3,
        precision="fp16",
        builder_optimization_level=int(sys.argv[1]) if len(sys.argv) > 1 else 0,
        cache_dir=Path(tempfile.mkdtemp()),
    )
    engine = TensorRTEngine(fetch_assets().model_onnx, options)
    rng = np.random.default_rng(0)
    slots = [engine.acquire() for _ in range(engine.num_slots)]
    for batch in (1, 3, 8):
        x = rng.random((batch, *engine.input_spec.shape[1:]), dtype=np.float32)
        results = []
        for slot in slots:
            runs = []
            for _ in range(2):
                slot.input[:batch] = x.astype(slot.input.dtype)
                slot.submit(batch)
                runs.append(slot.wait()[0].copy())
            results.append(runs)
        ref = results[0][0]
        for i, (a, b) in enumerate(results):
            print(
                f"batch {batch} slot {i}: same as slot 0: {np.array_equal(a, ref)} "
                f"(max |diff| {np.abs(a.astype(np.float64) - ref).max():.3g}), "
                f"repeat identical: {np.array_equal(a, b)}",
                flush=True,
            )
    for slot in slots:
        engine.release(slot)
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
