"""What a built TensorRT engine runs each layer in, read back with its engine inspector.

With a calibrator (``int8_method: minmax`` / ``entropy``) TensorRT chooses per layer whether
int8 is faster, and the choice moves with the builder level: minmax kept 0.95 of fp32's mAP50
at level 0 and 0.85 at level 1, where it also ran faster (docs/benchmarks.md). The inspector
says what was chosen, so ``build-engine`` prints the count and the int8 benchmarks record each
layer, and two builds can be compared layer by layer.

It needs an engine built with ``ProfilingVerbosity.DETAILED`` (engines/tensorrt_build.py sets
it; engines built before say nothing) and, for a dynamic batch, a context with its input shape
set: without one TensorRT reports every tensor as "N/A due to dynamic shapes".
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import Any

logger = logging.getLogger(__name__)

# Words of the inspector's "Format/Datatype" strings, first match wins: TensorRT 8.6 writes
# "Row major linear FP16 format" or "Thirty-two wide channel vectorized row major Int8
# format", later versions also "Half" and "Float".
_TYPES = (
    ("int8", re.compile(r"\bint8\b", re.I)),
    ("fp8", re.compile(r"\bfp8\b", re.I)),
    ("bf16", re.compile(r"\bbf16\b", re.I)),
    ("fp16", re.compile(r"\b(fp16|half)\b", re.I)),
    ("fp32", re.compile(r"\b(fp32|float)\b", re.I)),
    ("int32", re.compile(r"\bint32\b", re.I)),
    ("int64", re.compile(r"\bint64\b", re.I)),
    ("bool", re.compile(r"\bbool\b", re.I)),
)


def tensor_type(format_datatype: str) -> str:
    """``int8``, ``fp16``, ``fp32``, ... of one inspector tensor, or ``unknown``."""
    for name, pattern in _TYPES:
        if pattern.search(format_datatype):
            return name
    return "unknown"


def _types(tensors: list[Any]) -> list[str]:
    return [
        tensor_type(str(t.get("Format/Datatype", "")) if isinstance(t, dict) else str(t))
        for t in tensors
    ]


def layer_rows(information: str) -> list[dict[str, Any]]:
    """One row per engine layer of the inspector's JSON: its name, kind and the types it
    reads and writes. Empty when the engine was built without detailed verbosity."""
    layers = json.loads(information).get("Layers", [])
    if not all(isinstance(layer, dict) for layer in layers):  # LAYER_NAMES_ONLY: names only
        return []
    return [
        {
            "name": str(layer.get("Name", "")),
            "kind": str(layer.get("LayerType", "")),
            "inputs": _types(layer.get("Inputs", [])),
            "outputs": _types(layer.get("Outputs", [])),
        }
        for layer in layers
    ]


def computes_in(row: dict[str, Any]) -> str:
    """The precision a layer runs in: int8 if it reads int8 (an int8 kernel, whatever it
    writes), else the type of its first output; ``reformat`` for TensorRT's copies."""
    if row["kind"] == "Reformat":
        return "reformat"
    if "int8" in row["inputs"]:
        return "int8"
    return row["outputs"][0] if row["outputs"] else "unknown"


def summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many layers run in each precision (reformats counted apart)."""
    return dict(Counter(computes_in(row) for row in rows).most_common())


def report(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the benchmarks record of a build: the counts, and each layer's precision by name."""
    return {
        "layers": summary(rows),
        "layer_precisions": {row["name"]: computes_in(row) for row in rows},
    }


def describe(counts: dict[str, int]) -> str:
    """``int8 20, fp16 6, reformat 4`` (or why there is nothing to say)."""
    if not counts:
        return "no layer information (an engine built before detailed verbosity)"
    return ", ".join(f"{name} {count}" for name, count in counts.items())


def inspect(trt: Any, engine: Any, batch: int) -> list[dict[str, Any]]:
    """The layer rows of ``engine``, with each dynamic input at ``batch`` (profile 0). A
    context is made for it and dropped; TensorRT errors give an empty list and a log line, so
    a caller that only reports never fails for it."""
    try:
        context = engine.create_execution_context()
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            if engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
                continue
            shape = [batch if d == -1 else d for d in engine.get_tensor_shape(name)]
            context.set_input_shape(name, shape)
        inspector = engine.create_engine_inspector()
        if hasattr(inspector, "execution_context"):  # TensorRT 10+
            inspector.execution_context = context
        else:  # 8.x
            inspector.context = context
        rows = layer_rows(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        del inspector, context
        return rows
    except Exception as err:  # noqa: BLE001 - reporting only; name what failed
        logger.info("could not read the engine's layers back: %s", err)
        return []
