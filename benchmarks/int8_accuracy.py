"""Accuracy of int8 (Q/DQ and TensorRT's calibrators) and fp16 against fp32 on real frames.

The reference is fp32 ONNX Runtime on the CPU; its detections at conf 0.25 stand in for
ground truth. Each candidate's detections on the same frames give mAP50 (candidates decoded
at conf 0.01, ranked by score) and the fraction of reference boxes kept (candidates at conf
0.25). mAP50 is given twice: with one class per box, as the pipeline decodes, and with
every class past 0.01 per box (``multi_label``), the protocol of YOLOv5/v7/v8's val behind
published mAPs, where a box whose class flips between two near-tied scores still ranks under
both. Evaluation frames come from the sample videos (or ``--video``, and ``--eval-video``
for videos scored but not calibrated on) and leave out every frame calibration read, so
nothing is scored on a frame the quantizer saw. Each all-class mAP50 comes with a 95 %
bootstrap interval over the frames (blocks of 10 consecutive ones resampled): frames of short
videos repeat the same few objects, and the interval says how far the mean could move.

    python benchmarks/int8_accuracy.py --frames 128 --eval 200              # CPU: ORT Q/DQ
    python benchmarks/int8_accuracy.py --trt --level 0 --out acc.json       # + TensorRT paths
    python benchmarks/int8_accuracy.py --model /tmp/yolov3-tiny-640-v8head.onnx   # 640, v8 head

Candidates: ``ort-qdq`` (the Q/DQ model in ONNX Runtime, CPU), ``ort-qdq-unfused`` (the same
with ONNX Runtime's graph optimizations off, so no fused int8 kernels: quantize-dequantize
around float convs), ``ort-qdq-fp16`` (the Q/DQ model with its float layers in fp16, opset 19:
what TensorRT 11 builds for int8), and with ``--trt``:
``trt-fp16``, ``trt-int8-qdq``, ``trt-int8-entropy``, ``trt-int8-minmax`` (the last two
where this TensorRT has the calibrators); ``minmax+tail`` (or ``entropy+tail``) in
``--methods`` builds that calibrator with the decoding tail pinned to fp16
(engines/int8_tail.py). ``--no-fp16`` and ``--no-ort`` leave those candidates out, to save
device time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines import fp16, qdq  # noqa: E402
from engines.options import EngineOptions  # noqa: E402
from engines.tensorrt_build import batch_model  # noqa: E402
from processors.calibration import calibration_set, model_input_hw  # noqa: E402
from processors.evaluation import detect, eval_frames, kept, map50, map50_interval  # noqa: E402

REFERENCE_CONF = 0.25
RANKING_CONF = 0.01
BATCH = 8
MIN_BOXES = 10  # the second mAP50 counts classes with at least this many fp32 boxes


def score(reference, ranked, multi, thresholded) -> dict:
    def interval(candidates) -> list[float]:
        return [round(x, 4) for x in map50_interval(reference, candidates)]

    def common(candidates) -> float | None:
        """mAP50 over the classes with at least MIN_BOXES reference boxes (None: no class)."""
        try:
            return round(map50(reference, candidates, min_boxes=MIN_BOXES), 4)
        except ValueError:  # too few frames scored for any class to have that many
            return None

    return {
        "map50": round(map50(reference, ranked), 4),
        "map50_ci95": interval(ranked),
        f"map50_classes_ge{MIN_BOXES}": common(ranked),
        "map50_multi_label": round(map50(reference, multi), 4),
        "map50_multi_label_ci95": interval(multi),
        f"map50_multi_label_classes_ge{MIN_BOXES}": common(multi),
        "kept": round(kept(reference, thresholded), 4),
        "detections": sum(len(d) for d in thresholded),
    }


def ort_infer(path: Path):
    from engines.onnxruntime_engine import OnnxRuntimeEngine

    engine = OnnxRuntimeEngine(path, EngineOptions(backend="onnxruntime", max_batch=BATCH))
    return engine, lambda batch: engine.infer(batch)[0]


def ort_unfused(path: Path):
    """ONNX Runtime with graph optimizations off: each Q/DQ pair runs as quantize-dequantize
    around a float conv (what the Q/DQ graph means) instead of ONNX Runtime's fused int8
    kernels, whose own rounding is not what TensorRT does."""
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="ONNX model (default: YOLOv3-tiny)")
    parser.add_argument("--frames", type=int, default=128, help="calibration frames")
    parser.add_argument("--eval", type=int, default=200, help="evaluation frames")
    parser.add_argument("--trt", action="store_true", help="also TensorRT fp16 and int8")
    parser.add_argument("--level", type=int, default=0, help="TensorRT builder level")
    parser.add_argument("--methods", default="qdq,entropy,minmax", help="TensorRT int8 methods")
    parser.add_argument(
        "--qdq-ops",
        help="ops the Q/DQ model quantizes, comma-separated (default: Conv,MatMul,Gemm)",
    )
    parser.add_argument("--no-fp16", action="store_true", help="leave trt-fp16 out")
    parser.add_argument("--no-ort", action="store_true", help="leave ort-qdq out")
    parser.add_argument(
        "--qdq-method", help="ONNX Runtime calibration: MinMax (default), Percentile, Entropy"
    )
    parser.add_argument(
        "--head-float", action="store_true", help="keep the head's output convs float"
    )
    parser.add_argument(
        "--tail-float",
        action="store_true",
        help="leave the decoding tail (engines/int8_tail.py) out of --qdq-ops' quantization",
    )
    parser.add_argument(
        "--first-float",
        action=argparse.BooleanOptionalAction,
        default=qdq.KEEP_FIRST_FLOAT,
        help="keep the first conv (the stem) float (default: as engines/qdq.py)",
    )
    parser.add_argument(
        "--video",
        action="append",
        type=Path,
        help="a video to calibrate and score on (repeat; default: the two sample videos)",
    )
    parser.add_argument(
        "--eval-video",
        action="append",
        type=Path,
        help="a video to score on (repeat; default: the calibration videos); frames "
        "calibration read are left out",
    )
    parser.add_argument("--cache", type=Path, help="engine cache (default: a temp folder)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    from streams.assets import fetch_assets

    if args.qdq_method:
        qdq.CALIBRATE_METHOD = args.qdq_method  # part of the Q/DQ cache key
    if args.qdq_ops:
        qdq.OP_TYPES = args.qdq_ops.split(",")  # so are these
    qdq.KEEP_HEAD_FLOAT = args.head_float  # so is this
    qdq.KEEP_FIRST_FLOAT = args.first_float  # and this
    qdq.KEEP_TAIL_FLOAT = args.tail_float  # and this
    assets = fetch_assets()
    videos = [str(p) for p in args.video or assets.videos.values()]
    cache = args.cache or Path(tempfile.mkdtemp(prefix="int8-acc-"))
    # A fixed-batch export is scored through its dynamic-batch copy, as an engine would run it.
    model = batch_model(
        args.model or assets.model_onnx,
        EngineOptions(backend="onnxruntime", max_batch=BATCH, cache_dir=cache),
    )
    hw = model_input_hw(model)
    calibration = calibration_set(videos, hw, args.frames)
    scored = [str(p) for p in args.eval_video or videos]
    images = eval_frames(scored, args.eval, args.frames, videos)
    result: dict = {
        "model": model.name,
        "videos": [Path(v).name for v in videos],
        "eval_videos": [Path(v).name for v in scored],
        "calibration": calibration.describe,
        "eval_frames": len(images),
        "qdq_calibrate_method": qdq.CALIBRATE_METHOD,
        "qdq_op_types": qdq.OP_TYPES,
        "qdq_head_float": qdq.KEEP_HEAD_FLOAT,
        "qdq_first_float": qdq.KEEP_FIRST_FLOAT,
        "qdq_tail_float": qdq.KEEP_TAIL_FLOAT,
        "candidates": {},
    }
    engine, infer = ort_infer(model)
    reference = detect(infer, images, hw, REFERENCE_CONF)
    engine.close()
    result["reference_detections"] = sum(len(d) for d in reference)
    classes, counts = np.unique(
        np.concatenate([d.class_ids for d in reference]), return_counts=True
    )
    result["reference_boxes_per_class"] = {int(c): int(n) for c, n in zip(classes, counts)}

    def run(name: str, infer) -> None:
        started = time.perf_counter()
        ranked = detect(infer, images, hw, RANKING_CONF)
        multi = detect(infer, images, hw, RANKING_CONF, multi_label=True)
        thresholded = detect(infer, images, hw, REFERENCE_CONF)
        result["candidates"][name] = {**score(reference, ranked, multi, thresholded)}
        print(f"{name}: {result['candidates'][name]} ({time.perf_counter() - started:.0f} s)")

    if not args.no_ort:
        started = time.perf_counter()
        qdq_model = qdq.make_qdq(model, calibration, cache, print)
        result["qdq_make_s"] = round(time.perf_counter() - started, 1)
        engine, infer = ort_infer(qdq_model)
        run("ort-qdq", infer)
        engine.close()
        run("ort-qdq-unfused", ort_unfused(qdq_model))
        # What TensorRT 11 builds for int8 (strongly typed): the float layers in fp16.
        half = fp16.convert_file(qdq_model, qdq_model.with_name(qdq_model.stem + "-fp16.onnx"))
        engine, infer = ort_infer(half)
        run("ort-qdq-fp16", infer)
        engine.close()

    if args.trt:
        from engines import engine_layers, trt_calibrator
        from engines.tensorrt_build import import_tensorrt
        from engines.tensorrt_engine import TensorRTEngine

        trt = import_tensorrt()
        base = EngineOptions(
            backend="tensorrt",
            max_batch=BATCH,
            contexts=1,
            builder_optimization_level=args.level,
            cache_dir=cache,
            calibration_set=calibration,
        )
        runs = [] if args.no_fp16 else [("trt-fp16", replace(base, precision="fp16"))]
        for token in args.methods.split(","):
            method, tail = token.removesuffix("+tail"), token.endswith("+tail")
            if method != "qdq" and not trt_calibrator.available(trt, method):
                result["candidates"][f"trt-int8-{token}"] = "not in this TensorRT"
                continue
            options = replace(base, precision="int8", int8_method=method, keep_tail_fp16=tail)
            runs.append((f"trt-int8-{token}", options))
        for name, options in runs:
            started = time.perf_counter()
            engine = TensorRTEngine(model, options)
            build_s = time.perf_counter() - started
            run(name, lambda batch, e=engine: e.infer(batch)[0])
            result["candidates"][name]["setup_s"] = round(build_s, 1)
            layers = engine_layers.report(engine.layers())  # to compare builds layer by layer
            result["candidates"][name].update(layers)
            print(f"{name}: layers by precision: {engine_layers.describe(layers['layers'])}")
            engine.close()
        result["tensorrt"] = trt.__version__
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
