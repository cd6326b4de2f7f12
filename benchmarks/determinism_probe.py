"""Which stage moves? The chain of tests/support/chain.py under variants that each close one
suspected race, against a serial reference (GPU host; prints one row per run).

    python benchmarks/determinism_probe.py --runs 4 --variants eager,graphs,graphs-noshape
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--variants", default="eager,graphs,graphs-noshape,eager-nvdecsync")
    parser.add_argument("--json")
    args = parser.parse_args()

    from engines.tensorrt_engine import TensorRTSlot
    from streams.assets import fetch_assets
    from streams.capture.nvdec import NvdecReader
    from tests.support.chain import chain_engines, chain_videos, run_chain

    assets = fetch_assets()
    eager, graphs = chain_engines(assets.model_onnx, Path(tempfile.mkdtemp()))
    videos = chain_videos(assets)
    reference = run_chain(eager, videos, serial=True)

    submit, read = TensorRTSlot.submit, NvdecReader.read

    def submit_noshape(self, batch_size, *, input_on_device=False):
        """submit() as it was at aa971b6: a graph replayed with whatever shape the context has."""
        graph = self._graphs.get((batch_size, not input_on_device))
        if graph is None:
            return submit(self, batch_size, input_on_device=input_on_device)
        self._engine._ensure_device()
        graph.launch(self.stream)
        self._done.record(self.stream)
        self._pending = batch_size

    def read_sync(self):
        surface = read(self)
        self._stream.synchronize()
        return surface

    rows = []
    for variant in args.variants.split(","):
        engine = graphs if variant.startswith("graphs") else eager
        TensorRTSlot.submit = submit_noshape if "noshape" in variant else submit
        NvdecReader.read = read_sync if "nvdecsync" in variant else read
        if variant.startswith("graphs"):
            for slot in graphs._slots:  # recapture under this variant
                for g in slot._graphs.values():
                    g.destroy()
                slot._graphs.clear()
        for k in range(args.runs):
            diff = run_chain(engine, videos).differing(reference)
            row = {
                "variant": variant,
                "run": k,
                "inputs_differ": len(diff["inputs"]),
                "outputs_differ": len(diff["outputs"]),
                "first": diff["outputs"][:3],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    TensorRTSlot.submit, NvdecReader.read = submit, read
    print("graphs still on:", graphs.cuda_graphs)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    graphs.close()
    eager.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
