"""Convert an FP32 ONNX model to FP16, for TensorRT 11's strongly typed networks.

TensorRT 11 removed weak typing (``BuilderFlag.FP16``): a network runs in the types its
ONNX declares, so an fp16 engine needs an fp16 ONNX. This converter turns float32 weights,
constants and casts into float16 and keeps the model's **inputs and outputs float32**, with a
Cast after each input and before each output. That choice keeps the engine contract unchanged
(preprocessing writes float32, postprocessing reads float32, ONNX Runtime on the CPU checks the
same tensors); the two casts cost one tiny kernel each, which TensorRT fuses into its
neighbours. The engine nevertheless reads the I/O dtypes from the built engine, so models
whose inputs are fp16 already work too.

A Q/DQ model (``precision: int8`` with ``int8_method: qdq`` on TensorRT 11) is converted the same
way, so the layers left unquantized run fp16 as 8.6's and 10's ``INT8`` + ``FP16`` flags make
them: its scales become float16, which QuantizeLinear and DequantizeLinear accept from opset
19, so such a model is first moved to opset 19 by ONNX's version converter (as NVIDIA ModelOpt's
``high_precision_dtype="fp16"`` does for strongly typed TensorRT). A scale below float16's
smallest normal number (6.1e-5) keeps less precision; the count is logged.

Inputs the ONNX spec requires to be float32 (Resize/Upsample ``scales``, NonMaxSuppression's
boxes, scores and thresholds) stay float32: a constant feeding only such inputs is kept, and
a computed one gets a Cast back to float32. Values beyond the fp16 range are clipped (logged).

Example:
    convert_file(Path("yolov3-tiny.onnx"), Path("yolov3-tiny-fp16.onnx"))
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from engines.errors import EngineError
from engines.files import atomic_write

logger = logging.getLogger(__name__)

FP16_MAX = float(np.finfo(np.float16).max)
FP16_TINY = float(np.finfo(np.float16).tiny)  # smallest normal float16
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
QDQ_FP16_OPSET = 19  # the first opset whose Q/DQ take float16 inputs and scales


def _float32_inputs(op_type: str, opset: int) -> tuple[int, ...]:
    """Input positions the ONNX spec types as tensor(float) only, for ``op_type``."""
    if op_type == "Resize":
        return (1,) if opset < 11 else (2,)
    if op_type == "Upsample":
        return (1,)
    if op_type == "NonMaxSuppression":
        return (0, 1, 3, 4)
    return ()


def convert_model(model, *, keep_io_types: bool = True):
    """Return an FP16 copy of ``model`` (an ``onnx.ModelProto``); see the module docstring.

    Args:
        model: FP32 model.
        keep_io_types: keep float32 graph inputs and outputs (Cast nodes at the boundary);
            False makes them float16.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < QDQ_FP16_OPSET and any(n.op_type in QDQ_OPS for n in model.graph.node):
        model, opset = _to_qdq_opset(model, opset), QDQ_FP16_OPSET
    graph = model.graph
    for node in graph.node:
        if any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
            for a in node.attribute
        ):
            raise EngineError(
                f"FP16 conversion does not support control flow: node {node.name!r} "
                f"({node.op_type}) has a subgraph; export the model without If/Loop/Scan or "
                "build it with engine.precision: fp32"
            )

    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name:
                consumers.setdefault(name, []).append((node, i))
    fp32_slots = {
        (id(node), i)
        for node in graph.node
        for i in _float32_inputs(node.op_type, opset)
        if i < len(node.input)
    }
    output_names = {o.name for o in graph.output}

    def only_fp32_consumers(name: str) -> bool:
        uses = consumers.get(name, [])
        return (
            bool(uses)
            and name not in output_names
            and all((id(n), i) in fp32_slots for n, i in uses)
        )

    float32_names: set[str] = set()  # tensors that stay float32 after the conversion
    clipped = 0

    def to_fp16(array: np.ndarray) -> np.ndarray:
        nonlocal clipped
        big = np.abs(array) > FP16_MAX
        if big.any():
            clipped += int(big.sum())
            array = np.clip(array, -FP16_MAX, FP16_MAX)
        return array.astype(np.float16)

    scales = {n.input[1] for n in graph.node if n.op_type in QDQ_OPS and len(n.input) > 1}
    tiny_scales = 0
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        if only_fp32_consumers(init.name):
            float32_names.add(init.name)
            continue
        array = numpy_helper.to_array(init)
        if init.name in scales:
            tiny_scales += int(((array != 0) & (np.abs(array) < FP16_TINY)).sum())
        init.CopyFrom(numpy_helper.from_array(to_fp16(array), init.name))
    if tiny_scales:
        logger.warning(
            "FP16 conversion: %d Q/DQ scale values are below float16's smallest normal "
            "number %g and keep less precision",
            tiny_scales,
            FP16_TINY,
        )

    for node in graph.node:
        out = node.output[0] if node.output else ""
        if node.op_type in ("Constant", "ConstantOfShape"):
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                    if only_fp32_consumers(out):
                        float32_names.add(out)
                    else:
                        attr.t.CopyFrom(
                            numpy_helper.from_array(
                                to_fp16(numpy_helper.to_array(attr.t)), attr.t.name
                            )
                        )
                elif attr.name in ("value_float", "value_floats"):
                    float32_names.add(out)  # a scalar/list constant; rare in exported models
        elif node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    if only_fp32_consumers(out):
                        float32_names.add(out)
                    else:
                        attr.i = TensorProto.FLOAT16
        else:
            for attr in node.attribute:
                if attr.name == "dtype" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16  # RandomNormal, EyeLike, ...

    new_nodes: list[onnx.NodeProto] = []
    # Graph inputs: keep float32 at the boundary, cast once to float16 for the rest.
    input_casts: list[onnx.NodeProto] = []
    for inp in graph.input:
        if inp.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        if not keep_io_types:
            inp.type.tensor_type.elem_type = TensorProto.FLOAT16
            continue
        float32_names.add(inp.name)
        cast_out = f"{inp.name}__fp16"
        rewired = False
        for node, i in consumers.get(inp.name, []):
            if (id(node), i) not in fp32_slots:
                node.input[i] = cast_out
                rewired = True
        if rewired:
            input_casts.append(
                helper.make_node(
                    "Cast",
                    [inp.name],
                    [cast_out],
                    name=f"{inp.name}__cast_fp16",
                    to=TensorProto.FLOAT16,
                )
            )
    # Inputs that must be float32 but are fed by a tensor that is now float16.
    for node in graph.node:
        for i in _float32_inputs(node.op_type, opset):
            if i >= len(node.input) or not node.input[i]:
                continue
            src = node.input[i]
            if src in float32_names:
                continue
            cast_out = f"{src}__fp32_for_{node.name or node.op_type}_{i}"
            new_nodes.append(
                helper.make_node(
                    "Cast", [src], [cast_out], name=f"{cast_out}__cast", to=TensorProto.FLOAT
                )
            )
            node.input[i] = cast_out
        new_nodes.append(node)
    # Graph outputs: computed in float16, cast back to float32 under their original names.
    output_casts: list[onnx.NodeProto] = []
    for out in graph.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT or out.name in float32_names:
            continue
        if not keep_io_types:
            out.type.tensor_type.elem_type = TensorProto.FLOAT16
            continue
        inner = f"{out.name}__fp16"
        for node in new_nodes:
            for i, name in enumerate(node.output):
                if name == out.name:
                    node.output[i] = inner
            for i, name in enumerate(node.input):
                if name == out.name:
                    node.input[i] = inner
        output_casts.append(
            helper.make_node(
                "Cast", [inner], [out.name], name=f"{out.name}__cast_fp32", to=TensorProto.FLOAT
            )
        )

    del graph.node[:]
    graph.node.extend(input_casts + new_nodes + output_casts)
    del graph.value_info[:]  # stale float32 annotations would contradict the new types
    if clipped:
        logger.warning("FP16 conversion clipped %d weight values beyond +-%g", clipped, FP16_MAX)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as err:
        raise EngineError(
            f"FP16 conversion produced an invalid model ({err}); build with engine.precision: fp32"
        ) from err
    return model


def _to_qdq_opset(model, opset: int):
    """``model`` moved from ``opset`` to opset 19, whose Q/DQ take float16 (ONNX's own
    version converter adapts the ops that changed between, such as Resize and Split)."""
    import onnx
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, QDQ_FP16_OPSET)
        onnx.checker.check_model(upgraded)
    except Exception as err:  # noqa: BLE001 - the converter raises several kinds
        raise EngineError(
            f"FP16 conversion of a Q/DQ model needs opset {QDQ_FP16_OPSET} (float16 scales), "
            f"and moving this one from opset {opset} failed ({err}); export the model at opset "
            f">= {QDQ_FP16_OPSET}"
        ) from err
    logger.info(
        "moved the Q/DQ model from opset %d to %d for float16 scales", opset, QDQ_FP16_OPSET
    )
    return upgraded


def convert_file(src: Path, dst: Path, *, keep_io_types: bool = True) -> Path:
    """Convert the ONNX file ``src`` to FP16 and write it atomically to ``dst``."""
    import onnx

    try:
        model = onnx.load(str(src))
    except Exception as err:
        raise EngineError(f"{src}: cannot read this ONNX file ({err})") from err
    converted = convert_model(model, keep_io_types=keep_io_types)
    dst = Path(dst)
    atomic_write(dst, converted.SerializeToString())
    logger.info("wrote FP16 model %s", dst)
    return dst
