"""Engine build and run options: plain values, no YAML, so engines stay config-agnostic."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engines.files import cache_root

if TYPE_CHECKING:
    from engines.calibration import CalibrationSet

BACKENDS = ("auto", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
INT8_METHODS = ("auto", "qdq", "entropy", "minmax")


@dataclass(frozen=True)
class EngineOptions:
    """How to load or build an engine.

    Attributes:
        backend: ``auto`` picks TensorRT when it imports and a CUDA GPU is present, else
            ONNX Runtime on the CPU.
        device: ``cpu`` or ``cuda:N``: the GPU this engine runs on.
        devices: the GPUs a run spreads its streams over (``engine.device`` given as a list
            or ``all``; streams/scale/placement.py): CUDA ordinals, or ``"all"`` (resolved
            when the run starts). Empty: ``device`` alone. An engine only ever uses ``device``.
        max_batch: largest batch the engine accepts (the dynamic profile's max).
        opt_batch: batch size TensorRT tunes for (the profile's opt); defaults to max_batch.
        precision: ``fp32``, ``fp16`` or ``int8`` (GPU only; the CPU always runs fp32).
        contexts: TensorRT execution contexts (slots) in flight, each on its own CUDA stream.
        workspace_mb: TensorRT builder workspace limit.
        builder_optimization_level: TensorRT builder level 0..5 (lower builds much faster;
            1 by default, chosen from the levels measured in docs/benchmarks.md).
        cache_dir: where built TensorRT engines and timing caches are kept
            (``$STREAMS_CACHE/engines``, else ``~/.cache/streams/engines``).
        cuda_graphs: capture one CUDA graph per batch size where TensorRT allows it.
        threads: ONNX Runtime intra-op threads (0 = one per core).
        rewrite_fixed_batch: give a fixed-batch-1 model a dynamic batch when that is proven
            (engines/dynamic_batch.py), so it batches up to max_batch; False keeps batch 1.
        int8_method: with ``precision: int8``: ``qdq`` (a Q/DQ ONNX made by ONNX Runtime's
            static quantization, engines/qdq.py; every TensorRT version) or ``entropy`` /
            ``minmax`` (TensorRT's implicit calibrators; TensorRT 8.6 and 10 only); ``auto``
            (the default) is minmax where TensorRT has it, else qdq. minmax ran fastest, and
            at builder level 0 kept the most of fp32 on held-out frames. At level 1 it kept
            about 0.85, no more than qdq (docs/benchmarks.md).
        keep_tail_fp16: with a TensorRT calibrator (minmax, entropy): pin the detection
            head's decoding tail to fp16 (engines/int8_tail.py), to test whether that is what
            builder level 1 loses. Off, and not a config key, until a GPU run measures it
            (benchmarks set it: ``int8:minmax+tail``); when on, the engine key records it.
        calibration: where int8 calibration frames come from: ``streams`` (the configured
            streams) or a folder (or file) of images and videos.
        calibration_frames: how many frames calibrate.
        calibration_set: the frames themselves, resolved from ``calibration`` by the caller
            (the streams layer); engines read them only when a build needs them.
    """

    backend: str = "auto"
    device: str = "cuda:0"
    devices: tuple[int, ...] | str = ()
    max_batch: int = 8
    opt_batch: int | None = None
    precision: str = "fp16"
    contexts: int = 3
    workspace_mb: int = 1024
    builder_optimization_level: int = 1  # 99 % of level 3's speed, a fifth of its build
    cache_dir: Path = field(default_factory=lambda: cache_root() / "engines")
    cuda_graphs: bool = False
    threads: int = 0
    rewrite_fixed_batch: bool = True
    int8_method: str = "auto"  # minmax on TensorRT 8.6/10, qdq on 11
    keep_tail_fp16: bool = False  # not a config key until measured on a GPU
    calibration: str = "streams"
    calibration_frames: int = 256
    calibration_set: CalibrationSet | None = field(default=None, compare=False, repr=False)

    @property
    def device_index(self) -> int:
        """CUDA ordinal of ``device`` (0 for ``cpu``)."""
        return int(self.device.split(":", 1)[1]) if ":" in self.device else 0
