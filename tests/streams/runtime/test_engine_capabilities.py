"""The pipeline picks preprocessing by what an engine's slots offer, not by its name.

A third backend, written here against ``engines/base.py`` only (host input, its own slot class
and backend name, inference by an ONNX Runtime session of its own), runs the real pipeline to
a real subscriber with no edit of the pipeline.
"""

from __future__ import annotations

import queue
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort

from engines.base import TensorSpec
from streams.bus.publisher import Publisher
from streams.config import load_config
from streams.runtime.pipeline import Pipeline
from streams.runtime.preprocess import DevicePreprocess, HostPreprocess, choose_preprocess
from streams.runtime.stats import PipelineStats
from tests.helpers import Collector, free_port, iou, write_config


class _Slot:
    def __init__(self, engine: ThirdEngine) -> None:
        self.input = np.zeros((engine.max_batch, *engine.input_spec.shape[1:]), np.float32)
        self.device_input = None
        self._engine, self._future = engine, None

    def submit(self, batch_size: int, *, input_on_device: bool = False) -> None:
        assert not input_on_device, "a host-only slot was asked for device input"
        batch = self.input[:batch_size].copy()
        self._future = self._engine.pool.submit(
            self._engine.session.run, None, {self._engine.input_spec.name: batch}
        )

    def wait(self) -> list[np.ndarray]:
        return self._future.result()


class ThirdEngine:
    """A backend the pipeline has never heard of."""

    backend = "third"
    num_slots = 1

    def __init__(self, model_path) -> None:
        self.session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        node = self.session.get_inputs()[0]
        self.input_spec = TensorSpec(node.name, (-1, 3, 416, 416), np.dtype(np.float32))
        out = self.session.get_outputs()[0]
        self.output_specs = (TensorSpec(out.name, (-1, *out.shape[1:]), np.dtype(np.float32)),)
        self.max_batch = 2
        self.pool = ThreadPoolExecutor(1)
        self._free: queue.Queue[_Slot] = queue.Queue()
        self._free.put(_Slot(self))

    @property
    def input_hw(self) -> tuple[int, int]:
        return 416, 416

    def acquire(self) -> _Slot:
        return self._free.get()  # blocks while the one slot is in flight

    def release(self, slot: _Slot) -> None:
        self._free.put(slot)

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_spec.name: batch})

    def close(self) -> None:
        self.pool.shutdown()


def test_a_host_input_engine_gets_the_cpu_letterbox(assets):
    engine = ThirdEngine(assets.model_onnx)
    chosen = choose_preprocess(engine)
    assert isinstance(chosen, HostPreprocess) and not isinstance(chosen, DevicePreprocess)
    assert chosen.gpu is None and chosen.on_device is False
    engine.close()


# 30 frames of bikes.mp4 from 4 s (the cyclist and the cars: ~90 boxes, where the first 60
# frames had ~30): two CPU passes of half the frames, with more boxes compared.
FRAMES, START_S = 30, 4


def short_clip(assets, tmp_path) -> str:
    from tests.support.rtsp import ffmpeg_exe

    clip = tmp_path / f"bikes-{START_S}s-{FRAMES}.mp4"
    if not clip.exists():  # re-encoded: a copy could only start at a keyframe
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-ss", str(START_S), "-i",
             str(assets.videos["bikes.mp4"]), "-frames:v", str(FRAMES), "-c:v", "mpeg4",
             "-q:v", "2", str(clip)],
            check=True,
        )  # fmt: skip
    return str(clip)


def run_pipeline(assets, tmp_path, engine) -> dict[int, list[dict]]:
    """FRAMES of bikes.mp4, lossless, through the real pipeline to a real
    subscriber; seq -> boxes."""
    port = free_port()
    clip = short_clip(assets, tmp_path)
    config = load_config(
        write_config(
            tmp_path / f"{engine.backend}.yaml",
            [{"id": "bikes", "url": clip, "pace": "none"}],
            port,
        )
    )
    stats = PipelineStats()
    publisher = Publisher(config.publish, stats)
    collector = Collector(f"tcp://127.0.0.1:{port}", kinds=("det",))
    try:
        pipeline = Pipeline(
            config,
            engine,
            publisher,
            {"bikes": clip},
            assets.labels,
            "yolov3-tiny",
            stats,
        )
        pipeline.start()
        assert pipeline.wait(duration_s=300) == "all streams finished"
        pipeline.stop()
        got = collector.wait_for(lambda c: len(c.of("det")) == FRAMES, 10)
        assert got, len(collector.of("det"))
    finally:
        collector.close()
        publisher.close()
        engine.close()
    return {m["seq"]: m["detections"] for m in collector.of("det")}


def test_a_third_backend_runs_the_pipeline_unchanged(assets, tmp_path):
    from engines.onnxruntime_engine import OnnxRuntimeEngine
    from engines.options import EngineOptions

    third = run_pipeline(assets, tmp_path, ThirdEngine(assets.model_onnx))
    reference = run_pipeline(
        assets,
        tmp_path,
        OnnxRuntimeEngine(
            assets.model_onnx, EngineOptions(backend="onnxruntime", device="cpu", max_batch=2)
        ),
    )
    assert third.keys() == reference.keys() and len(third) == FRAMES
    assert sum(len(d) for d in third.values()) > 60
    for seq, boxes in reference.items():  # same model, same frames: the same detections
        assert [d["label"] for d in third[seq]] == [d["label"] for d in boxes], seq
        assert all(iou(a["box"], b["box"]) > 0.99 for a, b in zip(third[seq], boxes)), seq
