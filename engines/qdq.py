"""Explicit INT8: a Q/DQ ONNX made on the CPU by ONNX Runtime's static quantization.

TensorRT 10.1 deprecates its implicit calibrators and 11 removes them; what every version
builds is an ONNX graph with QuantizeLinear/DequantizeLinear pairs. ONNX Runtime's
``quantize_static`` makes one from calibration batches, set up the way TensorRT wants it:

- QDQ format, int8 activations and weights, both symmetric (TensorRT supports zero points of
  0 only), weights per output channel;
- float weights kept with a Q/DQ pair on them (``AddQDQPairToWeight``) and biases left in
  float (``QuantizeBias: False``): TensorRT folds the weight pair into an int8 kernel and fuses
  the float bias itself;
- Q/DQ only on the inputs of Conv/MatMul/Gemm (the head's output convs too: keeping them float,
  ``KEEP_HEAD_FLOAT``, measured no better on YOLOv3-tiny), NVIDIA's placement for CNNs: TensorRT
  then fuses the pointwise layers after each conv. The box-decoding tail stays float: with
  its Concats quantized too (``--qdq-ops`` in benchmarks/int8_accuracy.py), YOLOv3-tiny's
  mAP50 fell to 0 on the CPU. Keeping the stem (the first conv) float,
  ``KEEP_FIRST_FLOAT``, raised mAP50 on the frames it was chosen on but not on a video held
  out to check it, and halved YOLOv3-tiny's int8 speed on the H200 (docs/benchmarks.md).

The quantized file is kept in the engine cache, named by the model's sha256, the calibration
set's identity and the recipe, so it is made once per model and calibration set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from engines.calibration import CalibrationSet, Progress
from engines.errors import EngineError
from engines.files import atomic_write, file_sha256

logger = logging.getLogger(__name__)

RECIPE = 1  # bump when the settings below change
CALIBRATE_METHOD = "MinMax"  # measured against Percentile/Entropy: docs/benchmarks.md
DEFAULT_OP_TYPES = ("Conv", "MatMul", "Gemm")
OP_TYPES = list(DEFAULT_OP_TYPES)  # benchmarks/int8_accuracy.py --qdq-ops changes it
BATCH = 8
KEEP_HEAD_FLOAT = False  # keeping the head convs float measured no better (docs/benchmarks.md)
KEEP_FIRST_FLOAT = False  # the stem float: no surer accuracy, int8 0.56x fp16 (docs/benchmarks.md)
KEEP_TAIL_FLOAT = False  # with OP_TYPES beyond convs: the decoding tail float (int8_tail.py)


def _consumers(model) -> dict[str, list]:
    """Each tensor name -> the nodes that read it."""
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def first_convs(model) -> list[str]:
    """Names of the Conv nodes that read the graph input with no Conv in between: the stem,
    whose 3-channel input int8 gains little speed on and TensorRT's implicit mode often keeps
    in fp16."""
    consumers = _consumers(model)
    found, seen = [], set()
    todo = [i.name for i in model.graph.input]
    while todo:
        for nxt in consumers.get(todo.pop(), []):
            if id(nxt) in seen:
                continue
            seen.add(id(nxt))
            if nxt.op_type == "Conv":
                found.append(nxt.name)
            else:
                todo.extend(nxt.output)
    return found


def head_and_tail(model) -> tuple[list[str], list[str]]:
    """Node names of the detection head's output convs (no other Conv follows them: their raw
    box and score logits are what int8 rounds most visibly) and of the box-decoding tail
    after them, which engines/int8_tail.py keeps in fp16 on TensorRT."""
    from engines.int8_tail import decode_tail, onnx_views

    heads, tail = decode_tail(onnx_views(model))
    names = [node.name for node in model.graph.node]
    return [names[i] for i in heads], [names[i] for i in tail]


def qdq_path(model_path: Path, calibration: CalibrationSet, cache_dir: Path) -> Path:
    """Where the Q/DQ copy of ``model_path`` for ``calibration`` is (or would be) cached."""
    key = {
        "onnx_sha256": file_sha256(model_path),
        "calibration": calibration.identity,
        "recipe": RECIPE,
        "method": CALIBRATE_METHOD,
        "head_float": KEEP_HEAD_FLOAT,
        **({"first_float": True} if KEEP_FIRST_FLOAT else {}),  # recipe 1's keys stay valid
        **({"tail_float": True} if KEEP_TAIL_FLOAT else {}),
        **({"op_types": OP_TYPES} if tuple(OP_TYPES) != DEFAULT_OP_TYPES else {}),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir).expanduser() / f"{Path(model_path).stem}-{digest}-qdq.onnx"


def make_qdq(
    model_path: Path,
    calibration: CalibrationSet,
    cache_dir: Path,
    progress: Progress | None = None,
) -> Path:
    """The cached Q/DQ ONNX of ``model_path``, quantized now if it is not there yet."""
    out = qdq_path(model_path, calibration, cache_dir)
    if out.is_file():
        logger.info("using cached Q/DQ model %s", out)
        return out
    emit = progress or (lambda line: logger.info("%s", line))
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError as err:
        raise EngineError(
            f"int8 method qdq needs onnxruntime's quantization tools ({err}); install "
            "onnxruntime>=1.16, or use engine.int8_method: minmax (TensorRT 8.6/10)"
        ) from err
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False)
    input_name = graph.graph.input[0].name
    heads, tail = head_and_tail(graph)
    exclude = (
        (heads if KEEP_HEAD_FLOAT else [])
        + (first_convs(graph) if KEEP_FIRST_FLOAT else [])
        + (tail if KEEP_TAIL_FLOAT else [])
    )

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = calibration.batches(BATCH, emit)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    emit(
        f"quantizing {Path(model_path).name} to int8 Q/DQ on the CPU "
        f"({calibration.describe}, {CALIBRATE_METHOD} ranges)"
    )
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.onnx")
    try:
        quantize_static(
            str(model_path),
            str(tmp),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=OP_TYPES,
            nodes_to_exclude=exclude,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, CALIBRATE_METHOD),
            extra_options={
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "AddQDQPairToWeight": True,
                "QuantizeBias": False,
                "DedicatedQDQPair": False,
            },
        )
        atomic_write(out, tmp.read_bytes(), durable=True)
    except EngineError:
        raise
    except Exception as err:  # noqa: BLE001 - the quantizer raises many kinds; name the model
        raise EngineError(f"{model_path}: int8 Q/DQ quantization failed: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    emit(f"  Q/DQ model made in {time.perf_counter() - started:.1f} s: {out.name}")
    return out
