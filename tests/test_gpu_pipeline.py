"""The whole pipeline on TensorRT gives the CPU pipeline's detections (GPU host only)."""

import functools
import http.server
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from tests.helpers import Collector, free_port, iou, run_cli, start_cli, write_config
from tests.support.rtsp import ffmpeg_exe


def tensorrt_ready() -> str | None:
    try:
        import tensorrt  # noqa: F401

        from engines.cuda import device_count
    except Exception as err:  # noqa: BLE001 - any import failure means: no GPU path here
        return f"TensorRT or cuda-python missing: {err}"
    return None if device_count() > 0 else "no CUDA GPU"


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(tensorrt_ready() is not None, reason=str(tensorrt_ready())),
]


def trt_engine(tmp_path) -> dict:
    """The engine section of every GPU test: TensorRT fp16 built fast (level 0), cached in the
    test's directory."""
    return {
        "backend": "tensorrt",
        "precision": "fp16",
        "builder_optimization_level": 0,
        "cache_dir": str(tmp_path / "engines"),
    }


def run_pipeline(assets, tmp_path, engine: dict, copies: int = 1, **sections) -> tuple[dict, str]:
    """Both sample videos (``copies`` times each, ids ``bikes-0``... when more than one),
    lossless, through ``python -m streams run``; returns the det messages and the log."""
    port = free_port()
    videos = (("bikes", "bikes.mp4"), ("carphone", "carphone_pristine.mp4"))
    config = write_config(
        tmp_path / f"{engine['backend']}-{copies}.yaml",
        [
            {
                "id": name if copies == 1 else f"{name}-{k}",
                "url": str(assets.videos[video]),
                "pace": "none",
            }
            for k in range(copies)
            for name, video in videos
        ],
        port,
        engine=engine,
        **sections,
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    try:
        result = run_cli("run", str(config), "--no-live", timeout=600)
    finally:
        collector.close()
    assert result.returncode == 0, result.stderr[-3000:]
    # Keyed by presentation time: NVDEC and OpenCV number the same frames alike, but pair
    # them by what was shown, not by counting.
    return {(m["stream"], round(m["pts"], 3)): m for m in collector.of("det")}, result.stderr


def test_tensorrt_pipeline_matches_cpu_pipeline(assets, tmp_path):
    gpu, log = run_pipeline(
        assets,
        tmp_path,
        trt_engine(tmp_path),
    )
    cpu, _ = run_pipeline(assets, tmp_path, {"backend": "onnxruntime"})
    assert "tensorrt" in log.lower()
    if os.environ.get("STREAMS_TEST_DUMP"):
        Path(os.environ["STREAMS_TEST_DUMP"]).write_text(
            json.dumps(
                {
                    "gpu": {f"{k[0]}/{k[1]}": v for k, v in gpu.items()},
                    "cpu": {f"{k[0]}/{k[1]}": v for k, v in cpu.items()},
                }
            )
        )
    assert len(cpu) == 370 and len(gpu) == 370  # every frame of both files, lossless
    common = set(gpu) & set(cpu)
    assert len(common) >= 360, f"only {len(common)} frames share a pts"
    matched = missed = 0
    for key in common:
        for det in cpu[key]["detections"]:
            if det["score"] < 0.5:
                continue  # near the threshold, fp16 and NVDEC colour may flip a box
            hit = any(
                g["label"] == det["label"] and iou(g["box"], det["box"]) > 0.7
                for g in gpu[key]["detections"]
            )
            matched, missed = matched + hit, missed + (not hit)
    print(
        f"CPU detections (score >= 0.5) found again on the GPU path: {matched} of "
        f"{matched + missed}"
    )
    assert matched >= 100 and missed <= 0.1 * (matched + missed)


def test_worker_processes_on_the_gpu_give_every_frame_and_the_same_detections(assets, tmp_path):
    """Two worker processes, each with its own TensorRT engine and NVDEC decoders, behind one
    relay: every frame of every file arrives, and the same file decoded and inferred in the
    two processes gives the same detections."""
    dets, log = run_pipeline(
        assets,
        tmp_path,
        trt_engine(tmp_path),
        copies=2,
        workers={"processes": 2},
    )
    assert "w1 " in log and "decoder auto -> nvdec" in log
    frames = {}
    for (stream, pts), m in dets.items():
        frames.setdefault(stream, {})[pts] = m["detections"]
    assert {k: len(v) for k, v in frames.items()} == {
        "bikes-0": 250,
        "bikes-1": 250,
        "carphone-0": 120,
        "carphone-1": 120,
    }, {k: len(v) for k, v in frames.items()}
    for name in ("bikes", "carphone"):
        first, second = frames[f"{name}-0"], frames[f"{name}-1"]
        assert first.keys() == second.keys()
        for pts, dets in first.items():
            # Same engine file, same frames; batches differ in size between the processes, and
            # fp16 numerics with them: a truck at score 0.38 in one process once had no match in
            # the other, so compare the confident detections (>= 0.5) tightly.
            strong = [d for d in dets if d["score"] >= 0.5]
            for det in strong:
                assert any(
                    o["label"] == det["label"]
                    and iou(o["box"], det["box"]) > 0.9
                    and abs(o["score"] - det["score"]) < 0.02
                    for o in second[pts]
                ), f"{name} at {pts}: {det} not found in the other process"
    assert sum(len(d) for d in frames["bikes-0"].values()) > 100


def test_cuda_graphs_with_gpu_preprocessing_give_the_same_detections(assets, tmp_path):
    """NVDEC -> preprocessing kernel -> TensorRT replayed from CUDA graphs (the kernel writes
    the engine's input buffer on the engine's stream, then the graph runs): the same frames
    and detections as without graphs."""
    engine = trt_engine(tmp_path)
    plain, _ = run_pipeline(assets, tmp_path, engine)
    (tmp_path / "graphs").mkdir()
    graphs, log = run_pipeline(assets, tmp_path / "graphs", {**engine, "cuda_graphs": True})
    assert "CUDA graphs" in log and "switched off" not in log, log[-3000:]
    assert "decoder auto -> nvdec" in log
    assert plain.keys() == graphs.keys() and len(plain) == 370
    boxes = 0
    for key, message in plain.items():
        for det in message["detections"]:
            boxes += 1
            assert any(
                g["label"] == det["label"]
                and iou(g["box"], det["box"]) > 0.9
                and abs(g["score"] - det["score"]) < 0.02
                for g in graphs[key]["detections"]
            ), f"{key}: {det} lost with graphs"
    assert boxes > 100


def test_codecs_nvdec_does_not_take_fall_back_to_opencv_with_the_reason(assets, tmp_path):
    """An FFV1 file, and the same file from a real HTTP server (the network path, demuxed for
    NVDEC), decode with OpenCV and say why; the H.264 file beside them stays on NVDEC."""
    from tests.test_rtsp_pipeline import stop

    ffv1 = tmp_path / "street-ffv1.mkv"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(assets.videos["bikes.mp4"]),
            "-t",
            "6",
            "-c:v",
            "ffv1",
            str(ffv1),
        ],
        check=True,
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [
            {"id": "ffv1-file", "url": str(ffv1), "pace": "none"},
            {"id": "ffv1-http", "url": f"http://127.0.0.1:{server.server_port}/{ffv1.name}"},
            {"id": "h264-file", "url": str(assets.videos["bikes.mp4"]), "pace": "none"},
        ],
        port,
        capture={"reconnect_initial_s": 5},
        engine=trt_engine(tmp_path),
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    process = start_cli("run", str(config), "--no-live")
    try:
        assert collector.wait_for(
            lambda c: all(
                len(c.of("det", s)) >= 20 for s in ("ffv1-file", "ffv1-http", "h264-file")
            ),
            180,
        ), process.output()[-3000:]
    finally:
        stop(process, collector)
        server.shutdown()
    log = process.output()
    decoders = {
        s: [m.get("decoder") for m in collector.of("status", s) if m["state"] == "live"]
        for s in ("ffv1-file", "ffv1-http", "h264-file")
    }
    assert decoders["h264-file"] == ["nvdec"], decoders
    assert decoders["ffv1-file"] == ["opencv"] and decoders["ffv1-http"][0] == "opencv", decoders
    assert "stream ffv1-file: NVDEC cannot decode this file" in log, log[-3000:]
    assert "stream ffv1-http:" in log and "codec ffv1 is not one NVDEC decodes" in log, log[-3000:]
    labels = {d["label"] for m in collector.of("det", "ffv1-http") for d in m["detections"]}
    assert labels & {"person", "bicycle", "car"}, labels
