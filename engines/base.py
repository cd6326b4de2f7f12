"""The Engine contract: what every inference backend offers the pipeline.

An engine owns a small ring of *slots*. A slot is one batch in flight: a host input
buffer shaped ``(max_batch, 3, H, W)`` that preprocessing writes into, and the outputs
of the last run. The pipeline acquires a slot, fills ``slot.input[:n]``, calls
``slot.submit(n)`` (returns at once; GPU engines run on their own CUDA stream) and later
``slot.wait()`` for the outputs. With two or more slots, batch k+1 is prepared while
batch k runs.

What a slot offers decides how the pipeline preprocesses, never the backend's name: every
slot has the host buffer ``input``; a slot whose ``device_input`` is set also takes its
input straight in device memory (a GPU kernel writes ``device_input.ptr`` on
``device_input.stream``, then ``submit(n, input_on_device=True)``). A new backend declares
these and needs no change in the pipeline.

Optional: ``prepare_graphs(input_on_device=...)``. An engine that replays batches from CUDA
graphs captures them there, once, before the pipeline's threads start (the pipeline calls it
when the engine has it; engines without graphs leave it out).

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
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the CLI reads engine options before it may load numpy (signals first)
    import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (batch dimension first, ``-1`` where dynamic) and dtype of one tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass(frozen=True)
class DeviceInput:
    """A slot's input buffer in GPU memory, and the CUDA stream the slot runs on.

    Attributes:
        device_index: the GPU (``cuda:N``) the buffer is on; NVDEC decodes there too.
        ptr: device address of ``(max_batch, 3, H, W)`` of ``engine.input_spec.dtype``.
        stream: the slot's CUDA stream (an object with ``.handle``); work that writes the
            buffer is enqueued there, so it is ordered before the inference.
    """

    device_index: int
    ptr: int
    stream: Any


class EngineSlot(Protocol):
    """One batch in flight. ``input`` is written by preprocessing, then ``submit``/``wait``."""

    input: np.ndarray  # (max_batch, 3, H, W), dtype == engine.input_spec.dtype
    device_input: DeviceInput | None  # set where the slot also takes its input on a GPU

    def submit(self, batch_size: int, *, input_on_device: bool = False) -> None:
        """Start inference on ``input[:batch_size]`` (or, with ``input_on_device``, on what
        was written to ``device_input``); must not block on the result."""

    def wait(self) -> list[np.ndarray]:
        """Block until the run finishes; return host outputs, each ``(batch_size, ...)``."""


class Engine(Protocol):
    """An inference backend behind the pipeline (ONNX Runtime on CPU, TensorRT on GPU)."""

    backend: str  # "onnxruntime" | "tensorrt": for logs and reports, never for branching
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
