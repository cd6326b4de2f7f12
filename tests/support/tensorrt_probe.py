"""Print, as JSON, a real TensorRT's Python API surface and what ``engines/`` decides from it.

Run in its own process, where ``import tensorrt`` (the GPU kit's 8.6, any installed TensorRT) or,
with ``--bindings``, ``import tensorrt_bindings`` (NVIDIA's bindings wheel for 10 or 11, importable
here through tests/support/install_tensorrt_bindings.sh's shim) gives the real module. No GPU is
needed: everything read is an enum, a class or a member, and nothing is built.

    python tests/support/tensorrt_probe.py [--bindings] [--surface-only]

The surface (every public class with its public members, every other public name) is what
tests/data/tensorrt_api/VERSION.json records; ``--surface-only`` prints just that, to refresh it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def load(bindings: bool) -> Any:
    """The real TensorRT module, also as ``tensorrt`` so ``engines/`` imports this one."""
    if bindings:
        import tensorrt_bindings as trt

        sys.modules["tensorrt"] = trt
    else:
        import tensorrt as trt
    return trt


def surface(trt: Any) -> dict[str, Any]:
    """Every public name of the module; a class maps to its sorted public member names."""
    names: dict[str, list[str] | None] = {}
    for name in sorted(dir(trt)):
        if name.startswith("_"):
            continue
        obj = getattr(trt, name)
        names[name] = (
            sorted(m for m in dir(obj) if not m.startswith("_")) if inspect.isclass(obj) else None
        )
    return {"version": trt.__version__, "names": names}


def decisions(trt: Any) -> dict[str, Any]:
    """What the engines pick on this TensorRT, each from the real module."""
    sys.path.insert(0, str(ROOT))
    from engines import tensorrt_build, tensorrt_engine, trt_calibrator
    from engines.options import EngineOptions

    creation = trt.NetworkDefinitionCreationFlag

    def flags(precision: str) -> dict[str, Any]:
        chosen = tensorrt_build.build_flags(trt, precision)
        bits = [n for n, v in creation.__members__.items() if chosen.network & (1 << int(v))]
        return {
            "network": sorted(bits),
            "builder": list(chosen.builder),
            "builder_flags_exist": all(hasattr(trt.BuilderFlag, n) for n in chosen.builder),
            "strongly_typed": chosen.strongly_typed,
        }

    log = tensorrt_build.trt_logger()
    log.log(trt.ILogger.Severity.ERROR, "probe error")
    monitor = tensorrt_build._progress_monitor(trt, lambda line: None)
    return {
        "version_tuple": list(tensorrt_build.version_tuple(trt)),
        "int8_mode": tensorrt_build.int8_mode(trt),
        "fp16_mode": tensorrt_build.fp16_mode(trt),
        "calibrators": {m: trt_calibrator.available(trt, m) for m in trt_calibrator.CLASSES},
        "int8_auto": tensorrt_build.resolve_int8_method(
            trt, EngineOptions(precision="int8")
        ).int8_method,
        "flags": {p: flags(p) for p in ("fp32", "fp16", "int8")},
        "tactic_sources_cleared": sorted(
            str(s).split(".")[-1] for s in tensorrt_build.library_tactic_sources(trt)
        ),
        "numpy_dtypes": sorted(str(k).split(".")[-1] for k in tensorrt_engine._numpy_dtypes(trt)),
        "logger_errors": list(log.errors),
        "progress_monitor": monitor is not None and isinstance(monitor, trt.IProgressMonitor),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bindings", action="store_true", help="import tensorrt_bindings")
    parser.add_argument("--surface-only", action="store_true", help="print only the surface")
    args = parser.parse_args()
    trt = load(args.bindings)
    out = surface(trt)
    if not args.surface_only:
        out["decisions"] = decisions(trt)
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
