"""The Engine contract: what every inference backend offers the pipeline.

An engine owns a small ring of *slots*. A slot is one batch in flight: a host input
buffer shaped ``(max_batch, 3, H, W)`` that preprocessing writes into, and the outputs
of the last run. The pipeline acquires a slot, fills ``slot.input[:n]``, calls
``slot.submit(n)`` (returns at once; GPU engines run on their own CUDA stream) and later
``slot.wait()`` for the outputs. With two or more slots, batch k+1 is prepared while
batch k runs.

Example:
    slot = engine.acquire()
    preprocess_into(slot.input, frames)
    slot.submit(len(frames))
    outputs = slot.wait()  # list of arrays, each shaped (n, ...)
    engine.release(slot)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (batch dimension first, ``-1`` where dynamic) and dtype of one tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


class EngineSlot(Protocol):
    """One batch in flight. ``input`` is written by preprocessing, then ``submit``/``wait``."""

    input: np.ndarray  # (max_batch, 3, H, W), dtype == engine.input_spec.dtype

    def submit(self, batch_size: int) -> None:
        """Start inference on ``input[:batch_size]``; must not block on the result."""

    def wait(self) -> list[np.ndarray]:
        """Block until the run finishes; return host outputs, each ``(batch_size, ...)``."""


class Engine(Protocol):
    """An inference backend behind the pipeline (ONNX Runtime on CPU, TensorRT on GPU)."""

    backend: str  # "onnxruntime" | "tensorrt"
    input_spec: TensorSpec
    output_specs: Sequence[TensorSpec]
    max_batch: int
    num_slots: int

    @property
    def input_hw(self) -> tuple[int, int]:
        """Model input (height, width) in pixels."""

    def acquire(self) -> EngineSlot:
        """Return a free slot, blocking until one is free."""

    def release(self, slot: EngineSlot) -> None:
        """Give a slot back after its outputs have been read."""

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Synchronous convenience: run one ``(n, 3, H, W)`` batch, return outputs."""

    def close(self) -> None:
        """Free buffers, sessions, contexts and streams."""
