"""Preprocessing chosen by what the engine's slots offer, never by the backend's name.

A slot always has a host input buffer; one that also offers a device input (``DeviceInput``:
a buffer on a GPU and the slot's CUDA stream) gets the fused GPU kernel, which reads NVDEC
surfaces in place and uploads host frames once. A new backend declares what its slots offer
(``engines/base.py``) and the pipeline needs no edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from engines.base import DeviceInput, Engine, EngineSlot
from processors.letterbox import Letterbox, preprocess_into
from streams.capture.frames import Frame


class Preprocess(Protocol):
    """Writes a batch of frames into a slot's input; returns each frame's letterbox."""

    on_device: bool  # the slot is then submitted with ``input_on_device=True``
    gpu: int | None  # the GPU the input is written on (NVDEC may decode there), or None

    def __call__(self, slot: EngineSlot, frames: Sequence[Frame]) -> list[Letterbox]: ...

    def download(
        self, slot: EngineSlot, rows: Sequence[int], boxes: Sequence[Letterbox]
    ) -> dict[int, tuple[np.ndarray, Letterbox]] | None:
        """The model input of ``rows`` on the host once the slot's ``wait`` returns (views:
        copy them before the slot is released), for the browser view's pictures; None where
        the frames' own host images serve (the CPU path)."""
        ...


class HostPreprocess:
    """Letterbox each frame on the CPU into the slot's host buffer."""

    on_device = False
    gpu = None

    def __call__(self, slot: EngineSlot, frames: Sequence[Frame]) -> list[Letterbox]:
        return [preprocess_into(slot.input[i], frame.image_bgr) for i, frame in enumerate(frames)]

    def download(self, slot, rows, boxes) -> None:
        return None  # the decoded frames are on the host already

    def close(self) -> None:
        pass


class DevicePreprocess:
    """One kernel launch per batch on the slot's CUDA stream, into its device input."""

    on_device = True

    def __init__(self, engine: Engine, device_input: DeviceInput) -> None:
        from processors.gpu_preprocess import GpuPreprocessor

        self.gpu = device_input.device_index
        self._kernel = GpuPreprocessor(
            engine.input_hw, engine.input_spec.dtype, engine.max_batch, device_index=self.gpu
        )

    def __call__(self, slot: EngineSlot, frames: Sequence[Frame]) -> list[Letterbox]:
        """NVDEC surfaces are read in place and released right after the launch (the
        decoder waits on an event recorded on this stream before reusing them)."""
        target, kernel = slot.device_input, self._kernel
        try:
            sources = [
                frame.surface.nv12()
                if frame.surface is not None
                else kernel.upload_bgr(target.stream, frame.image_bgr)
                for frame in frames
            ]
            return kernel.preprocess(target.stream, target.ptr, sources)
        finally:
            for frame in frames:
                frame.release(target.stream)

    def download(
        self, slot: EngineSlot, rows: Sequence[int], boxes: Sequence[Letterbox]
    ) -> dict[int, tuple[np.ndarray, Letterbox]]:
        """Copy the watched rows of the device input into the slot's host input, which a slot
        running on device input does not use (and which is pinned on TensorRT's slots, so the
        copies are asynchronous); enqueued on the slot's stream after the preprocessing kernel
        and before ``submit`` (which records the slot's done event), so they are done once
        ``wait`` returns. Only the rows of watched streams, a few a second."""
        from engines.cuda import memcpy_dtoh_async

        target, host = slot.device_input, slot.input
        row_bytes = host[0].nbytes
        base = host.ctypes.data
        for i in rows:
            offset = i * row_bytes
            memcpy_dtoh_async(base + offset, target.ptr + offset, row_bytes, target.stream)
        return {i: (host[i], boxes[i]) for i in rows}

    def close(self) -> None:
        self._kernel.close()


def device_input_of(engine: Engine) -> DeviceInput | None:
    """What the engine's slots offer on a GPU (all slots of an engine offer the same)."""
    slot = engine.acquire()
    try:
        return getattr(slot, "device_input", None)
    finally:
        engine.release(slot)


def choose_preprocess(engine: Engine) -> Preprocess:
    """The GPU kernel where the engine's slots take device input, else the CPU letterbox."""
    device_input = device_input_of(engine)
    return HostPreprocess() if device_input is None else DevicePreprocess(engine, device_input)
