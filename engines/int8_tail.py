"""Implicit INT8 with the detection head's decoding tail kept in fp16 (TensorRT 8.6/10).

With TensorRT's calibrators (``int8_method: minmax`` / ``entropy``) every tensor gets a
dynamic range, so TensorRT may run any layer in int8 where that is faster, the box-decoding
tail included (Sigmoid, Exp, the anchor Mul/Add, Concat). The explicit Q/DQ path never does
this: its Q/DQ sit only on conv inputs (engines/qdq.py). On the CPU, YOLOv3-tiny's Q/DQ
model kept its mAP50 with the tail's pointwise layers in int8 (0.890 either way) and lost all
of it with the Concats as well (0.000): one int8 scale over box centres in pixels and scores
in [0, 1]. On the H200 (TensorRT 8.6), minmax kept 0.95 of fp32's mAP50 at builder level 0
and ran 1.07x fp16. At level 1, where TensorRT tries more int8 kernels, it ran 1.13x and kept
0.85 (docs/benchmarks.md). Whether the tail is what level 1 puts in int8 is not known yet.

This pins the tail to fp16 with layer precision constraints. The head convs (no conv after
them) may still read int8, but they write fp16. Every layer their outputs flow into computes
and writes fp16. For a v8-style head, the DFL conv stands for the box branch, so the Softmax
before it is left to TensorRT. ``EngineOptions.keep_tail_fp16`` turns it on; it stays off
(and out of the config) until a run on the device shows it keeps accuracy at level 1
(``bash benchmarks/gpu_int8_recipes.sh tail``). When it is on, the engine key records it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerView:
    """What the tail search needs of one layer: whether it is a convolution, and the names of
    the tensors it reads and writes."""

    is_conv: bool
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def onnx_views(model) -> list[LayerView]:
    """One view per node of an ONNX model (engines/qdq.py finds its head convs this way)."""
    return [
        LayerView(n.op_type == "Conv", tuple(n.input), tuple(n.output)) for n in model.graph.node
    ]


def decode_tail(layers: Sequence[LayerView]) -> tuple[list[int], list[int]]:
    """(head convs, tail layers) as indices into ``layers``: the convs no other conv follows,
    and every layer downstream of them."""
    consumers: dict[str, list[int]] = {}
    for index, layer in enumerate(layers):
        for name in layer.inputs:
            consumers.setdefault(name, []).append(index)

    def downstream(index: int) -> set[int]:
        found: set[int] = set()
        todo = list(layers[index].outputs)
        while todo:
            for nxt in consumers.get(todo.pop(), []):
                if nxt not in found:
                    found.add(nxt)
                    todo.extend(layers[nxt].outputs)
        return found

    heads, tail = [], set()
    for index, layer in enumerate(layers):
        if not layer.is_conv:
            continue
        after = downstream(index)
        if not any(layers[i].is_conv for i in after):
            heads.append(index)
            tail |= after
    return heads, sorted(tail)


def keep_tail_fp16(trt: Any, network: Any, config: Any) -> int:
    """Constrain the head convs' outputs and the decoding tail of ``network`` to fp16 (float
    tensors only: shape and index tensors keep their type, and so do the network's outputs).
    Returns the layers constrained."""
    flag = getattr(trt.BuilderFlag, "PREFER_PRECISION_CONSTRAINTS", None)
    if flag is None:
        logger.warning("this TensorRT has no precision constraints; the int8 tail is not pinned")
        return 0
    conv = trt.LayerType.CONVOLUTION
    floats = (trt.float32, trt.float16)
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    views = [
        LayerView(
            layer.type == conv,
            tuple(t.name for t in (layer.get_input(j) for j in range(layer.num_inputs)) if t),
            tuple(layer.get_output(j).name for j in range(layer.num_outputs)),
        )
        for layer in layers
    ]
    heads, tail = decode_tail(views)
    in_tail = set(tail)
    constrained = 0
    for index in heads + tail:
        layer = layers[index]
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if not all(t.dtype in floats for t in outputs):
            continue
        if index in in_tail:
            layer.precision = trt.float16
        for j, tensor in enumerate(outputs):
            if not tensor.is_network_output:  # the engine's outputs stay the type it reads
                layer.set_output_type(j, trt.float16)
        constrained += 1
    config.set_flag(flag)
    logger.info(
        "int8: %d head convs and %d tail layers kept in fp16 (%d constrained)",
        len(heads),
        len(tail),
        constrained,
    )
    return constrained
