"""Make a fixed-batch ONNX export batch across streams: a dynamic batch, proven, cached.

Most YOLO exports (Ultralytics' default) declare a fixed input ``[1, 3, H, W]``; an engine
built from them runs one frame at a time, so the pipeline cannot batch across streams. This
module rewrites such a model so that its batch dimension is symbolic, but only where that is
provably right:

1. **Batch analysis.** The batch axis of every tensor is followed from the input through each
   node with rules per operator (elementwise broadcasting, Conv/pooling, Transpose, Concat,
   Split, Slice, Gather, Squeeze/Unsqueeze, Flatten, Reshape, Expand, Tile, Pad, MatMul, Gemm,
   Softmax, reductions, ...). A node that mixes batch items (a reduction or Softmax over the
   batch axis, a Flatten that folds the batch into one row, a Concat with a constant that has
   no batch, a Shape that reads it) or an operator without a rule stops the rewrite, and the
   reason names the node. Constants that hard-code the batch are rewritten where the rule
   proves what they mean: the batch entry of a Reshape target becomes ``-1`` (or ``0``, a copy
   of the input's batch, when the target already has a ``-1``), a Slice end of 1 over the batch
   becomes "to the end". Every graph output must carry the batch on its first axis.
2. **Shape inference.** ONNX shape inference in strict mode must accept the rewritten model and
   must not infer a fixed batch for any output.
3. **Parity.** ONNX Runtime runs the rewritten model on a batch of ``PARITY_BATCH`` distinct
   random images and the original model on each image alone; every output must match within
   ``1e-4`` of the output's scale (``1e-2`` for float16 models).

Only a model that passes all three is used; otherwise the engine keeps the fixed batch and a
warning says why. The result, either way, is kept in the engine cache next to the engines
(``<cache_dir>/<stem>-<sha16>-batch<FORMAT>.onnx`` and a ``.json`` record, both written
atomically), so the analysis and the parity runs happen once per model.

Only a fixed batch of 1 is rewritten (what exporters produce); ``[4, 3, H, W]`` exports are
used as they are.

Example:
    result = make_dynamic(Path("yolov8s.onnx"), Path("~/.cache/streams/engines"))
    model = result.path  # the rewritten copy when result.dynamic, else the original
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import EngineError
from engines.files import atomic_write, file_sha256

logger = logging.getLogger(__name__)

FORMAT = 1  # bump when the analysis changes, so cached verdicts are made again
PARITY_BATCH = 3
BATCH_NAME = "batch"
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class BatchRewrite:
    """What :func:`make_dynamic` decided.

    Attributes:
        path: the model to use: the rewritten copy when ``dynamic``, else the original.
        dynamic: whether ``path`` has a dynamic batch.
        reason: why the fixed batch was kept (None when dynamic).
        rewritten_now: whether this call did the analysis and parity runs (False: cached).
    """

    path: Path
    dynamic: bool
    reason: str | None
    rewritten_now: bool


class Unproven(Exception):
    """The batch handling of a node (named in the message) cannot be proven."""


def input_batch(model_path: Path) -> int | None:
    """The fixed batch of the model's single input, or None (dynamic, or not readable here:
    the engine that loads it reports that)."""
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception:  # noqa: BLE001 - the backend's own loader names the real problem
        return None
    inputs = _real_inputs(model.graph)
    if len(inputs) != 1:
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    if not dims or not dims[0].HasField("dim_value"):
        return None
    return int(dims[0].dim_value) or None


def make_dynamic(model_path: Path, cache_dir: Path) -> BatchRewrite:
    """The dynamic-batch copy of the fixed-batch ONNX ``model_path``, made once and cached.

    Returns a :class:`BatchRewrite`; never raises for a model that cannot be rewritten (the
    reason is returned). Raises EngineError only when ``model_path`` cannot be read.
    """
    model_path = Path(model_path)
    try:
        sha = file_sha256(model_path)
    except OSError as err:
        raise EngineError(f"{model_path}: cannot read this ONNX file ({err})") from err
    base = Path(cache_dir).expanduser() / f"{model_path.stem}-{sha[:16]}-batch{FORMAT}"
    out, record_path = base.with_suffix(".onnx"), base.with_suffix(".json")
    record = _read_record(record_path, sha)
    if record is not None:
        if record["dynamic"] and out.is_file():
            logger.info("%s: using its dynamic-batch copy %s", model_path.name, out)
            return BatchRewrite(out, True, None, False)
        if not record["dynamic"]:
            return BatchRewrite(model_path, False, record["reason"], False)
    started = time.perf_counter()
    try:
        data, summary = rewrite_file(model_path)
    except Unproven as why:
        reason = str(why)
        _write_record(record_path, sha, False, reason)
        return BatchRewrite(model_path, False, reason, True)
    try:
        atomic_write(out, data)
    except OSError as err:
        return BatchRewrite(
            model_path, False, f"cannot write the rewritten model to {out} ({err})", True
        )
    _write_record(record_path, sha, True, summary)
    logger.info(
        "%s: rewrote it for a dynamic batch in %.1f s (%s); cached as %s",
        model_path.name,
        time.perf_counter() - started,
        summary,
        out,
    )
    return BatchRewrite(out, True, None, True)


def rewrite_file(model_path: Path) -> tuple[bytes, str]:
    """Rewrite and check ``model_path``; returns (serialized model, summary) or raises Unproven."""
    import onnx

    try:
        original = onnx.load(str(model_path))
    except Exception as err:  # noqa: BLE001 - onnx raises several types for a bad file
        raise Unproven(f"onnx cannot read it ({err})") from err
    model, changes = rewrite_model(original)
    data = model.SerializeToString()
    max_error = check_parity(original.SerializeToString(), data)
    summary = (
        f"{len(changes)} batch constant(s) rewritten"
        + (f": {'; '.join(changes)}" if changes else "")
        + f"; batch {PARITY_BATCH} matches {PARITY_BATCH} single runs of the original "
        f"(max error {max_error:.2g} of the output scale)"
    )
    return data, summary


# -- the rewrite ---------------------------------------------------------------------------


def _real_inputs(graph: Any) -> list[Any]:
    initializers = {i.name for i in graph.initializer}
    return [i for i in graph.input if i.name not in initializers]


def rewrite_model(model: Any) -> tuple[Any, list[str]]:
    """A copy of ``model`` (fixed batch 1) with a symbolic batch, and what was rewritten.

    Raises:
        Unproven: naming the node, constant or check that could not be proven.
    """
    import onnx
    from onnx import numpy_helper

    inputs = _real_inputs(model.graph)
    if len(inputs) != 1:
        raise Unproven(f"it has {len(inputs)} inputs; only single-input models are rewritten")
    dims = inputs[0].type.tensor_type.shape.dim
    if not dims or not dims[0].HasField("dim_value"):
        raise Unproven("its input batch is not fixed")
    if dims[0].dim_value != 1:
        raise Unproven(
            f"its fixed batch is {dims[0].dim_value}; only a fixed batch of 1 is rewritten"
        )
    analysis = _Analysis(model)
    analysis.run()

    new = onnx.ModelProto.FromString(model.SerializeToString())
    graph = new.graph
    nodes = list(graph.node)
    existing = {i.name for i in graph.initializer} | {o for n in nodes for o in n.output}
    for rewrite in analysis.rewrites:
        node = nodes[rewrite.node_index]
        name = f"{node.input[rewrite.input_index]}__dynbatch"
        while name in existing:
            name += "_"
        existing.add(name)
        graph.initializer.append(numpy_helper.from_array(rewrite.value, name))
        node.input[rewrite.input_index] = name
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for value in [*_real_inputs(graph), *graph.output]:
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = BATCH_NAME
    del graph.value_info[:]  # stale shapes with the fixed batch would contradict the new ones
    _check_inference(new)
    return new, [r.what for r in analysis.rewrites]


def _check_inference(model: Any) -> None:
    """Strict ONNX shape inference must accept ``model`` and infer no fixed output batch."""
    import onnx

    try:
        onnx.checker.check_model(model)
        probe = onnx.ModelProto.FromString(model.SerializeToString())
        for out in probe.graph.output:
            out.type.tensor_type.ClearField("shape")
        inferred = onnx.shape_inference.infer_shapes(
            probe, check_type=True, strict_mode=True, data_prop=True
        )
    except Exception as err:  # noqa: BLE001 - onnx raises InferenceError, ValidationError, ...
        raise Unproven(f"ONNX shape inference rejects the rewritten model: {err}") from err
    for out in inferred.graph.output:
        shape = out.type.tensor_type.shape
        if shape.dim and shape.dim[0].HasField("dim_value"):
            raise Unproven(
                f"ONNX shape inference still gives output {out.name!r} a fixed batch of "
                f"{shape.dim[0].dim_value}: a constant somewhere hard-codes it"
            )


@dataclass(frozen=True)
class _Rewrite:
    node_index: int
    input_index: int
    value: np.ndarray
    what: str


_ELEMENTWISE = frozenset(
    "Abs Acos Acosh Add And Asin Asinh Atan Atanh BitShift Cast CastLike Ceil Celu Clip Cos "
    "Cosh Div Dropout Elu Equal Erf Exp Floor Gelu Greater GreaterOrEqual HardSigmoid HardSwish "
    "Identity IsInf IsNaN LeakyRelu Less LessOrEqual Log Max Mean Min Mish Mod Mul Neg Not Or "
    "PRelu Pow Reciprocal Relu Round Selu Shrink Sigmoid Sign Sin Sinh Softplus Softsign Sqrt "
    "Sub Sum Tan Tanh ThresholdedRelu Where Xor".split()
)
# Batch on axis 0 of input 0, the other inputs weights: each image is computed alone.
_PER_IMAGE = frozenset(
    "AveragePool BatchNormalization Conv ConvInteger ConvTranspose DepthToSpace GlobalAveragePool "
    "GlobalLpPool GlobalMaxPool InstanceNormalization LRN LpNormalization LpPool MaxPool "
    "SpaceToDepth".split()
)
_REDUCE = frozenset(
    "ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd "
    "ReduceSum ReduceSumSquare".split()
)


class _Analysis:
    """Follows the batch axis through the graph; collects the constants to rewrite."""

    def __init__(self, model: Any) -> None:
        import onnx
        from onnx import numpy_helper

        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        except Exception as err:  # noqa: BLE001 - one failing node must not hide the rest
            logger.debug("strict shape inference failed on the original (%s); lenient now", err)
            inferred = onnx.shape_inference.infer_shapes(model)
        self.shapes: dict[str, tuple[int | None, ...]] = {}
        g = inferred.graph
        for value in [*g.input, *g.value_info, *g.output]:
            if value.type.tensor_type.HasField("shape"):
                self.shapes[value.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else None
                    for d in value.type.tensor_type.shape.dim
                )
        self.consts: dict[str, np.ndarray] = {}
        for init in self.graph.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
            self.shapes[init.name] = tuple(init.dims)
        self.axis: dict[str, int | None] = {i.name: None for i in self.graph.initializer}
        for value in _real_inputs(self.graph):
            self.axis[value.name] = 0
        self.rewrites: list[_Rewrite] = []
        self._rules: dict[str, Callable[[Any, int], list[int | None]]] = {
            "Concat": self._concat,
            "Constant": self._constant,
            "Expand": self._expand,
            "Flatten": self._flatten,
            "Gather": self._gather,
            "Gemm": self._gemm,
            "LayerNormalization": self._layer_norm,
            "MatMul": self._matmul,
            "Pad": self._pad,
            "Reshape": self._reshape,
            "Resize": self._resize,
            "Upsample": self._resize,
            "Shape": self._shape,
            "Slice": self._slice,
            "Split": self._split,
            "Squeeze": self._squeeze,
            "Tile": self._tile,
            "Transpose": self._transpose,
            "Unsqueeze": self._unsqueeze,
            "TopK": self._along_axis,
            "ArgMax": self._along_axis,
            "ArgMin": self._along_axis,
            "CumSum": self._along_axis,
            "Softmax": self._softmax,
            "LogSoftmax": self._softmax,
            "Hardmax": self._softmax,
            "QuantizeLinear": self._quantize,
            "DequantizeLinear": self._quantize,
        }

    # -- driving ------------------------------------------------------------------------

    def run(self) -> None:
        import onnx

        for index, node in enumerate(self.graph.node):
            where = f"node {node.name or index!r} ({node.op_type})"
            if node.domain not in ("", "ai.onnx"):
                raise Unproven(f"{where} is a custom operator of domain {node.domain!r}")
            if any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                for a in node.attribute
            ):
                raise Unproven(f"{where} has a subgraph (control flow)")
            for name in node.input:
                if name and name not in self.axis:
                    raise Unproven(f"{where} reads {name!r} before it is computed")
            batched = [n for n in node.input if n and self.axis[n] is not None]
            if not batched and node.op_type not in ("Constant",):
                axes: list[int | None] = [None] * len(node.output)  # a constant subgraph
            else:
                try:
                    axes = self._apply(node, index)
                except Unproven as why:
                    raise Unproven(f"{where}: {why}") from None
            for name, axis in zip(node.output, axes):
                if name:
                    self.axis[name] = axis
        for out in self.graph.output:
            if self.axis.get(out.name) != 0:
                where = (
                    "no batch axis"
                    if self.axis.get(out.name) is None
                    else f"the batch on axis {self.axis[out.name]}"
                )
                raise Unproven(f"output {out.name!r} has {where}, not on its first axis")

    def _apply(self, node: Any, index: int) -> list[int | None]:
        op = node.op_type
        if op in _ELEMENTWISE:
            return [self._broadcast(list(node.input))] * len(node.output)
        if op in _PER_IMAGE:
            if any(self.axis[n] is not None for n in node.input[1:] if n):
                raise Unproven("a weight input carries the batch")
            if self.axis[node.input[0]] != 0:
                raise Unproven(f"the batch is on axis {self.axis[node.input[0]]}, not 0")
            if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
                raise Unproven("its Indices output counts across the whole batch")
            return [0] + [None] * (len(node.output) - 1)
        if op in _REDUCE:
            return [self._reduce(node)]
        rule = self._rules.get(op)
        if rule is None:
            raise Unproven("no rule says how this operator treats the batch")
        return rule(node, index)

    # -- helpers ------------------------------------------------------------------------

    def _shape_of(self, name: str) -> tuple[int | None, ...]:
        shape = self.shapes.get(name)
        if shape is None:
            raise Unproven(f"the shape of {name!r} is unknown")
        return shape

    def _const(self, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            raise Unproven(f"its {what} ({name!r}) is computed, not a constant")
        return self.consts[name]

    def _only_first_batched(self, node: Any) -> int:
        a = self.axis[node.input[0]]
        if a is None or any(self.axis[n] is not None for n in node.input[1:] if n):
            raise Unproven("the batch reaches a parameter input")
        return a

    def _rank(self, name: str) -> int:
        return len(self._shape_of(name))

    @staticmethod
    def _attr(node: Any, name: str, default: Any = None) -> Any:
        from onnx import helper

        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def _axes_input(self, node: Any, position: int, attr: str, since: int) -> list[int] | None:
        """Axes from an attribute (opset < since) or a constant input; None when absent."""
        if self.opset < since:
            value = self._attr(node, attr)
            return None if value is None else [int(v) for v in value]
        if len(node.input) > position and node.input[position]:
            return [int(v) for v in self._const(node.input[position], attr).reshape(-1)]
        return None

    def _broadcast(self, names: list[str]) -> int | None:
        names = [n for n in names if n]
        batched = [(n, self.axis[n]) for n in names if self.axis[n] is not None]
        if not batched:
            return None
        rank = max(self._rank(n) for n in names)
        positions = {rank - self._rank(n) + a for n, a in batched}
        if len(positions) != 1:
            raise Unproven(f"its inputs carry the batch on different axes {sorted(positions)}")
        p = positions.pop()
        for n in names:
            if self.axis[n] is None:
                k = p - (rank - self._rank(n))
                if k >= 0 and self._shape_of(n)[k] != 1:
                    raise Unproven(
                        f"{n!r} (shape {self._shape_of(n)}, no batch) meets the batch axis "
                        "with a size other than 1"
                    )
        return p

    # -- rules --------------------------------------------------------------------------

    def _constant(self, node: Any, index: int) -> list[int | None]:
        from onnx import numpy_helper

        for a in node.attribute:
            if a.name == "value":
                self.consts[node.output[0]] = numpy_helper.to_array(a.t)
            elif a.name in ("value_int", "value_ints", "value_float", "value_floats"):
                self.consts[node.output[0]] = np.asarray(self._attr(node, a.name))
        if node.output[0] in self.consts:
            self.shapes.setdefault(node.output[0], self.consts[node.output[0]].shape)
        return [None]

    def _transpose(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        perm = self._attr(node, "perm") or list(reversed(range(self._rank(node.input[0]))))
        return [list(perm).index(a)]

    def _concat(self, node: Any, index: int) -> list[int | None]:
        rank = self._rank(node.input[0])
        axis = int(self._attr(node, "axis")) % rank
        axes = {self.axis[n] for n in node.input if n}
        if None in axes:
            raise Unproven("it joins a tensor without the batch to batched ones")
        if len(axes) != 1:
            raise Unproven(f"its inputs carry the batch on different axes {sorted(axes)}")
        a = axes.pop()
        if axis == a:
            raise Unproven("it concatenates along the batch axis")
        return [a]

    def _split(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        if int(self._attr(node, "axis", 0)) % self._rank(node.input[0]) == a:
            raise Unproven("it splits along the batch axis")
        return [a] * len(node.output)

    def _along_axis(self, node: Any, index: int) -> list[int | None]:
        """TopK, ArgMax/ArgMin, CumSum: work along one axis, which must not be the batch."""
        a = self._only_first_batched(node)
        rank = self._rank(node.input[0])
        if node.op_type == "CumSum":
            axis = int(self._const(node.input[1], "axis").reshape(-1)[0])
        else:
            axis = int(self._attr(node, "axis", -1 if node.op_type == "TopK" else 0))
        if axis % rank == a:
            raise Unproven("it works along the batch axis, mixing images")
        if node.op_type in ("ArgMax", "ArgMin") and not self._attr(node, "keepdims", 1):
            return [a - (axis % rank < a)]
        return [a] * len(node.output)

    def _softmax(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        rank = self._rank(node.input[0])
        axis = int(self._attr(node, "axis", -1 if self.opset >= 13 else 1)) % rank
        if (self.opset >= 13 and axis == a) or (self.opset < 13 and a >= axis):
            raise Unproven(f"it normalises over the batch axis (axis {axis})")
        return [a]

    def _layer_norm(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        axis = int(self._attr(node, "axis", -1)) % self._rank(node.input[0])
        if a >= axis:
            raise Unproven("it normalises over the batch axis")
        return [a] + [a] * (len(node.output) - 1)

    def _reduce(self, node: Any) -> int | None:
        a = self._only_first_batched(node)
        rank = self._rank(node.input[0])
        since = 13 if node.op_type == "ReduceSum" else 18
        axes = self._axes_input(node, 1, "axes", since)
        if not axes:
            if self._attr(node, "noop_with_empty_axes", 0):
                return a
            raise Unproven("it reduces over every axis, the batch included")
        axes = [x % rank for x in axes]
        if a in axes:
            raise Unproven("it reduces over the batch axis, mixing images")
        if self._attr(node, "keepdims", 1):
            return a
        return a - sum(x < a for x in axes)

    def _squeeze(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        rank = self._rank(node.input[0])
        axes = self._axes_input(node, 1, "axes", 13)
        if axes is None:
            raise Unproven("it squeezes every axis of size 1, the batch of 1 included")
        axes = [x % rank for x in axes]
        if a in axes:
            raise Unproven("it squeezes the batch axis away")
        return [a - sum(x < a for x in axes)]

    def _unsqueeze(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        axes = self._axes_input(node, 1, "axes", 13) or []
        out_rank = self._rank(node.input[0]) + len(axes)
        inserted = {x % out_rank for x in axes}
        kept = [i for i in range(out_rank) if i not in inserted]
        return [kept[a]]

    def _flatten(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        shape = self._shape_of(node.input[0])
        axis = int(self._attr(node, "axis", 1)) % (len(shape) + 1)
        if axis == 0:
            raise Unproven("it flattens every image into one row (axis 0), mixing the batch")
        if a != 0 or any(d != 1 for d in shape[1:axis]):
            raise Unproven(f"it folds the batch axis {a} together with others (axis {axis})")
        return [0]

    def _gather(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        rank = self._rank(node.input[0])
        axis = int(self._attr(node, "axis", 0)) % rank
        if axis == a:
            raise Unproven("it indexes the batch axis, picking images")
        return [a if a < axis else a + self._rank(node.input[1]) - 1]

    def _shape(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        rank = self._rank(node.input[0])
        start = int(self._attr(node, "start", 0))
        end = self._attr(node, "end")
        start = max(0, start + rank if start < 0 else start)
        end = rank if end is None else max(0, int(end) + rank if int(end) < 0 else int(end))
        if start <= a < end:
            raise Unproven("it reads the batch size, which the graph would then compute with")
        return [None]

    def _quantize(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        scale_shape = self._shape_of(node.input[1])
        axis = int(self._attr(node, "axis", 1)) % self._rank(node.input[0])
        if len(scale_shape) > 0 and axis == a:
            raise Unproven("its scales are per batch item")
        return [a]

    def _resize(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        if a != 0:
            raise Unproven(f"the batch is on axis {a}, not 0")
        if node.op_type == "Resize" and len(node.input) > 3 and node.input[3]:
            raise Unproven("its output size is given as `sizes`, which fix the batch")
        position = 1 if node.op_type == "Upsample" or self.opset < 11 else 2
        if len(node.input) > position and node.input[position]:
            scales = self._const(node.input[position], "scales").reshape(-1)
            if scales.size and scales[0] != 1:
                raise Unproven(f"it scales the batch axis by {scales[0]}")
        elif node.op_type == "Upsample":
            scales = self._attr(node, "scales")
            if scales and scales[0] != 1:
                raise Unproven(f"it scales the batch axis by {scales[0]}")
        return [0]

    def _matmul(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        ra, rb = self._rank(node.input[0]), self._rank(node.input[1])
        if ra == 1 or a == ra - 1:
            raise Unproven("the batch is on the contracted axis")
        if a == ra - 2:  # rows of A: one image per row, independent
            return [max(ra, rb) - 2]
        rank = max(ra, rb)
        p = rank - ra + a
        k = p - (rank - rb)
        if k >= 0 and rb > 2 and self._shape_of(node.input[1])[k] != 1:
            raise Unproven("the second operand has a size other than 1 on the batch axis")
        return [p]

    def _gemm(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        if a != 0 or self._attr(node, "transA", 0):
            raise Unproven("the batch is not the rows of A")
        if len(node.input) > 2 and node.input[2]:
            c = self._shape_of(node.input[2])
            if len(c) == 2 and c[0] != 1:
                raise Unproven("its bias C has a size other than 1 on the batch axis")
        return [0]

    def _pad(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        rank = self._rank(node.input[0])
        if self.opset < 11:
            pads = list(self._attr(node, "pads"))
        else:
            if len(node.input) > 3 and node.input[3]:
                raise Unproven("it pads explicit `axes`")
            pads = [int(v) for v in self._const(node.input[1], "pads").reshape(-1)]
        if pads[a] or pads[rank + a]:
            raise Unproven("it pads the batch axis")
        return [a]

    def _tile(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        repeats = self._const(node.input[1], "repeats").reshape(-1)
        if repeats[a] != 1:
            raise Unproven(f"it repeats the batch axis {int(repeats[a])} times")
        return [a]

    def _expand(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        r = self._rank(node.input[0])
        target = self._const(node.input[1], "shape").reshape(-1)
        rank = max(r, target.size)
        p = rank - r + a
        k = p - (rank - target.size)
        if k >= 0 and target[k] != 1:
            raise Unproven(f"its target shape {target.tolist()} sets the batch to {target[k]}")
        return [p]

    def _slice(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        if self.opset < 10:
            raise Unproven("Slice before opset 10 keeps its bounds in attributes")
        rank = self._rank(node.input[0])
        starts = self._const(node.input[1], "starts").reshape(-1)
        ends = self._const(node.input[2], "ends").reshape(-1)
        axes = (
            self._const(node.input[3], "axes").reshape(-1) % rank
            if len(node.input) > 3 and node.input[3]
            else np.arange(starts.size)
        )
        steps = (
            self._const(node.input[4], "steps").reshape(-1)
            if len(node.input) > 4 and node.input[4]
            else np.ones(starts.size, np.int64)
        )
        hits = np.flatnonzero(axes == a)
        if hits.size:
            i = int(hits[0])
            if steps[i] != 1 or starts[i] != 0:
                raise Unproven(
                    f"it slices the batch axis from {starts[i]} by {steps[i]}, not all of it"
                )
            if ends[i] < 1:
                raise Unproven(f"it slices the batch axis to {ends[i]}, not all of it")
            if ends[i] < np.iinfo(np.int32).max:  # "to 1", the fixed batch: "to the end"
                value = ends.copy()
                value[i] = _INT64_MAX if value.dtype == np.int64 else np.iinfo(value.dtype).max
                self.rewrites.append(
                    _Rewrite(
                        index, 2, value, f"Slice {node.name!r} ends {ends.tolist()} -> to the end"
                    )
                )
        return [a]

    def _reshape(self, node: Any, index: int) -> list[int | None]:
        a = self._only_first_batched(node)
        in_shape = self._shape_of(node.input[0])
        if any(d is None for d in in_shape):
            raise Unproven(f"its input shape {in_shape} is not fully known")
        target = self._const(node.input[1], "target shape").reshape(-1).astype(np.int64)
        allowzero = bool(self._attr(node, "allowzero", 0))
        out = _resolve_reshape(in_shape, target, allowzero)
        if out is None:
            raise Unproven(f"its target {target.tolist()} does not fit its input {in_shape}")
        prefix, suffix = int(np.prod(in_shape[:a])), int(np.prod(in_shape[a + 1 :]))
        batch_at = [
            j
            for j in range(len(out))
            if out[j] == 1
            and int(np.prod(out[:j])) == prefix
            and int(np.prod(out[j + 1 :])) == suffix
        ]
        if not batch_at:
            raise Unproven(
                f"its target {target.tolist()} on input {in_shape} (batch on axis {a}) has no "
                "axis that is provably the batch"
            )
        j = batch_at[0]
        value = target.copy()
        if not allowzero and a < len(value) and value[a] == 0 and a != j:
            value[a] = 1  # a copy of the input's batch would land on a non-batch axis
        others = [k for k in range(len(value)) if k != j]
        if value[j] == 0 and not allowzero and j == a:
            pass  # already copies the batch
        elif value[j] == -1:
            pass  # already inferred from the element count, which carries the batch
        elif not any(value[k] == -1 for k in others):
            value[j] = -1
        elif not allowzero and j == a:
            value[j] = 0
        else:
            raise Unproven(
                f"its target {target.tolist()} already infers another axis (-1), and the batch "
                f"axis {j} is not the input's batch axis {a}, so 0 cannot copy it"
            )
        if not np.array_equal(value, target):
            self.rewrites.append(
                _Rewrite(
                    index,
                    1,
                    value.astype(self.consts[node.input[1]].dtype),
                    f"Reshape {node.name!r} {target.tolist()} -> {value.tolist()}",
                )
            )
        return [j]


def _resolve_reshape(
    in_shape: tuple[int | None, ...], target: np.ndarray, allowzero: bool
) -> list[int] | None:
    """The static output shape of a Reshape, or None when the target does not fit."""
    out = [
        int(in_shape[i]) if (t == 0 and not allowzero and i < len(in_shape)) else int(t)
        for i, t in enumerate(target)
    ]
    total = int(np.prod(in_shape))
    if out.count(-1) > 1:
        return None
    if -1 in out:
        rest = int(np.prod([d for d in out if d != -1]))
        if rest == 0 or total % rest:
            return None
        out[out.index(-1)] = total // rest
    return out if int(np.prod(out)) == total else None


# -- parity ---------------------------------------------------------------------------------


def check_parity(original: bytes, rewritten: bytes) -> float:
    """Batch ``PARITY_BATCH`` of ``rewritten`` against single runs of ``original`` in ONNX
    Runtime; returns the largest error as a fraction of the output scale, raises Unproven."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ref_session = ort.InferenceSession(original, options, providers=["CPUExecutionProvider"])
        new_session = ort.InferenceSession(rewritten, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types
        raise Unproven(f"ONNX Runtime cannot load the rewritten model ({err})") from err
    (inp,) = ref_session.get_inputs()
    dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
    rng = np.random.default_rng(20240613)
    images = rng.random((PARITY_BATCH, *inp.shape[1:]), dtype=np.float32).astype(dtype)
    names = [o.name for o in ref_session.get_outputs()]
    try:
        singles = [
            ref_session.run(names, {inp.name: images[i : i + 1]}) for i in range(len(images))
        ]
        batched = new_session.run(names, {new_session.get_inputs()[0].name: images})
    except Exception as err:  # noqa: BLE001
        raise Unproven(f"ONNX Runtime fails running the rewritten model ({err})") from err
    tolerance = 1e-2 if dtype == np.float16 else 1e-4
    worst = 0.0
    for k, name in enumerate(names):
        ref = np.concatenate([s[k] for s in singles]).astype(np.float64)
        got = np.asarray(batched[k], np.float64)
        if got.shape != ref.shape:
            raise Unproven(
                f"parity: output {name!r} is {got.shape} at batch {PARITY_BATCH}, but "
                f"{PARITY_BATCH} single runs give {ref.shape}"
            )
        if not np.array_equal(np.isnan(got), np.isnan(ref)):
            raise Unproven(f"parity: output {name!r} has NaNs in other places than the original")
        scale = max(float(np.nanmax(np.abs(ref))) if ref.size else 0.0, 1e-6)
        error = float(np.nanmax(np.abs(got - ref))) / scale if ref.size else 0.0
        if error > tolerance:
            item = int(np.nanargmax(np.abs(got - ref).reshape(len(images), -1).max(axis=1)))
            raise Unproven(
                f"parity: output {name!r} at batch {PARITY_BATCH} differs from single runs of "
                f"the original by {error:.3g} of its scale {scale:.3g} (image {item}; allowed "
                f"{tolerance:g})"
            )
        worst = max(worst, error)
    return worst


# -- the cache record -----------------------------------------------------------------------


def _read_record(path: Path, sha: str) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        logger.warning("dynamic-batch record %s is unreadable (%s); checking again", path, err)
        return None
    if (
        not isinstance(record, dict)
        or record.get("format") != FORMAT
        or record.get("source_sha256") != sha
        or not isinstance(record.get("dynamic"), bool)
    ):
        return None
    return record


def _write_record(path: Path, sha: str, dynamic: bool, text: str) -> None:
    record = {
        "format": FORMAT,
        "source_sha256": sha,
        "dynamic": dynamic,
        "reason" if not dynamic else "summary": text,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        atomic_write(path, (json.dumps(record, indent=2) + "\n").encode())
    except OSError as err:  # a verdict not cached is made again next start
        logger.warning("cannot write %s (%s); the batch check will run again", path, err)
