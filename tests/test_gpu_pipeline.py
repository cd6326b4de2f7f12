"""The whole pipeline on TensorRT gives the CPU pipeline's detections (GPU host only)."""

import pytest

from tests.helpers import Collector, free_port, iou, run_cli, write_config


def tensorrt_ready() -> str | None:
    try:
        import tensorrt  # noqa: F401

        from engines.cuda import device_count
    except Exception as err:  # noqa: BLE001 - any import failure means: no GPU path here
        return f"TensorRT or cuda-python missing: {err}"
    return None if device_count() > 0 else "no CUDA GPU"


pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(tensorrt_ready() is not None, reason=str(tensorrt_ready()))]


def run_pipeline(assets, tmp_path, engine: dict) -> dict:
    port = free_port()
    config = write_config(tmp_path / f"{engine['backend']}.yaml", [
        {"id": "bikes", "url": str(assets.videos["bikes.mp4"]), "pace": "none", "fps": 5},
        {"id": "carphone", "url": str(assets.videos["carphone_pristine.mp4"]), "pace": "none",
         "fps": 5},
    ], port, engine=engine)
    collector = Collector(f"tcp://127.0.0.1:{port}")
    try:
        result = run_cli("run", str(config), "--no-live", timeout=600)
    finally:
        collector.close()
    assert result.returncode == 0, result.stderr[-3000:]
    return {(m["stream"], m["seq"]): m for m in collector.of("det")}, result.stderr


def test_tensorrt_pipeline_matches_cpu_pipeline(assets, tmp_path):
    gpu, log = run_pipeline(assets, tmp_path, {"backend": "tensorrt", "precision": "fp16",
                                               "builder_optimization_level": 0,
                                               "cache_dir": str(tmp_path / "engines")})
    cpu, _ = run_pipeline(assets, tmp_path, {"backend": "onnxruntime"})
    assert "tensorrt" in log.lower()
    assert set(gpu) == set(cpu) and len(cpu) == 70  # 50 bikes + 20 carphone frames, lossless
    matched = missed = 0
    for key, cpu_message in cpu.items():
        gpu_dets = gpu[key]["detections"]
        for det in cpu_message["detections"]:
            if det["score"] < 0.35:
                continue  # near the threshold fp16 may legitimately flip a box in or out
            hit = any(g["label"] == det["label"] and iou(g["box"], det["box"]) > 0.8
                      and abs(g["score"] - det["score"]) < 0.05 for g in gpu_dets)
            matched, missed = matched + hit, missed + (not hit)
    print(f"confident CPU detections matched on TensorRT fp16: {matched}, missed: {missed}")
    assert matched >= 20 and missed <= max(1, matched // 50)
