"""The GPU path gives the same results run after run: NVDEC -> kernel -> TensorRT, bit for bit.

The same frames, in the same batches, go through the chain many times with everything the
pipeline overlaps (decoder threads running ahead, three slots in flight on their own streams,
surfaces released on the slot's stream) with and without CUDA graphs; each run must give
engine outputs bit-identical to a serial reference run that overlaps nothing. A race shows as
a frame that differs in some runs and not in others (tests/support/chain.py).
"""

from __future__ import annotations

import os

import pytest

from tests.test_gpu_pipeline import tensorrt_ready

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(tensorrt_ready() is not None, reason=str(tensorrt_ready())),
]

RUNS = int(os.environ.get("STREAMS_DETERMINISM_RUNS", "6"))  # per mode


@pytest.fixture(scope="module")
def engines(assets, tmp_path_factory):
    from tests.support.chain import chain_engines

    eager, graphs = chain_engines(assets.model_onnx, tmp_path_factory.mktemp("engines"))
    yield eager, graphs
    graphs.close()
    eager.close()


def test_nvdec_kernel_tensorrt_outputs_are_bit_identical_run_after_run(assets, engines):
    from tests.support.chain import chain_videos, run_chain

    eager, graphs = engines
    videos = chain_videos(assets)
    reference = run_chain(eager, videos, serial=True)
    assert len(reference.outputs) == 250 + 120 + 250
    report = []
    for mode, engine in (("eager", eager), ("graphs", graphs)):
        for k in range(RUNS):
            diff = run_chain(engine, videos).differing(reference)
            report.append((mode, k, len(diff["inputs"]), len(diff["outputs"]), diff["outputs"][:4]))
    assert graphs.cuda_graphs, "CUDA graphs were switched off"
    print("\nrun: mode, n, frames with a different kernel output, different engine output")
    for row in report:
        print("  ", *row)
    identical = sum(1 for row in report if row[2] == row[3] == 0)
    print(
        f"{identical} of {len(report)} runs bit-identical to the serial reference "
        f"({len(reference.outputs)} frames each)"
    )
    assert identical == len(report), report
