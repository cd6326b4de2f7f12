"""INT8 calibration frames from images, videos or stream URLs, preprocessed as at run time.

Every frame goes through :func:`processors.letterbox.preprocess_into`, the function the
pipeline's CPU path uses (the GPU kernel reproduces it), so the ranges a quantizer sees are
the ranges the engine gets. Frames are spread evenly: ``frames`` are divided between the
sources, and inside a video they are taken at an even stride over its length (a live URL,
whose length is unknown, gives every 5th frame from the start).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from engines.calibration import CalibrationSet, Progress
from engines.errors import EngineError
from processors.letterbox import preprocess_into

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".ts", ".h264", ".h265"}
LIVE_STRIDE = 5


def find_sources(spec: str | Path) -> list[str]:
    """The image and video files under ``spec`` (a folder, searched recursively, or a file)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return [str(path)]
    if not path.is_dir():
        raise EngineError(f"engine.calibration: {path} is neither a folder nor a file")
    found = sorted(
        str(p)
        for p in path.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
    )
    if not found:
        raise EngineError(
            f"engine.calibration: {path} holds no images or videos "
            f"({', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})"
        )
    return found


def model_input_hw(model_path: Path) -> tuple[int, int]:
    """(H, W) of the ONNX model's single image input, which calibration frames are sized to."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    dims = inputs[0].type.tensor_type.shape.dim if len(inputs) == 1 else []
    if len(dims) != 4 or not all(d.HasField("dim_value") for d in dims[2:]):
        raise EngineError(
            f"{model_path}: int8 calibration needs one (N, 3, H, W) input with fixed H and W"
        )
    return int(dims[2].dim_value), int(dims[3].dim_value)


def calibration_set(
    sources: Sequence[str], input_hw: tuple[int, int], frames: int
) -> CalibrationSet:
    """A CalibrationSet of ``frames`` frames from ``sources`` letterboxed to ``input_hw``."""
    if not sources:
        raise EngineError("engine.calibration: no sources to calibrate from")
    if frames < 1:
        raise EngineError(f"engine.calibration_frames: {frames}; expected at least 1")
    sources = list(sources)
    identity = hashlib.sha256(
        json.dumps(
            {"sources": [_fingerprint(s) for s in sources], "frames": frames, "hw": input_hw},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    videos = sum(Path(s).suffix.lower() not in IMAGE_SUFFIXES for s in sources)
    describe = f"{frames} frames from {len(sources) - videos} image(s) and {videos} video(s)"

    def read(batch_size: int, progress: Progress | None) -> Iterator[np.ndarray]:
        return _batches(sources, tuple(input_hw), frames, batch_size, progress)

    return CalibrationSet(identity, frames, describe, read)


def _fingerprint(source: str) -> list:
    path = Path(source)
    try:
        stat = path.stat()
    except OSError:
        return [source]  # a URL: its name is all that is known without opening it
    return [str(path.resolve()), stat.st_size, int(stat.st_mtime)]


def _batches(
    sources: list[str],
    input_hw: tuple[int, int],
    frames: int,
    batch_size: int,
    progress: Progress | None,
) -> Iterator[np.ndarray]:
    batch = np.empty((batch_size, 3, *input_hw), np.float32)
    filled = done = 0
    images = [s for s in sources if Path(s).suffix.lower() in IMAGE_SUFFIXES]
    videos = [s for s in sources if s not in images]
    quota = _quotas(frames, len(images), len(videos))
    for image in _frames(images, videos, quota):
        preprocess_into(batch[filled], image)
        filled += 1
        done += 1
        if filled == batch_size:
            yield batch.copy()
            filled = 0
            if progress is not None and (done % max(batch_size, 32) < batch_size):
                progress(f"  calibration frames: {done}/{frames}")
    if filled:
        yield batch[:filled].copy()
    if progress is not None:
        progress(f"  calibration frames: {done}/{frames} read")


def _quotas(frames: int, images: int, videos: int) -> tuple[int, list[int]]:
    """(frames per image, frames per video): images take one each, videos share the rest."""
    from_images = min(frames, images)
    rest = frames - from_images
    per_video = [rest // videos + (i < rest % videos) for i in range(videos)] if videos else []
    return from_images, per_video


def video_stride(total: int, want: int) -> int:
    """Every how many frames a video of ``total`` frames gives one of ``want`` (0: live)."""
    return max(1, total // want) if total > 0 else LIVE_STRIDE


def video_frame_indices(total: int, want: int) -> range:
    """The frame indices calibration reads from a file of ``total`` frames asked for ``want``."""
    stride = video_stride(total, want)
    return range(0, min(total, stride * want), stride)


def video_quotas(frames: int, videos: int) -> list[int]:
    """Frames asked of each of ``videos`` videos for a calibration set of ``frames``."""
    return _quotas(frames, 0, videos)[1]


def _frames(images: list[str], videos: list[str], quota: tuple[int, list[int]]) -> Iterator:
    import cv2

    from_images, per_video = quota
    for path in images[:from_images]:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            logger.warning("int8 calibration: cannot read image %s; skipped", path)
            continue
        yield image
    for path, want in zip(videos, per_video):
        if want <= 0:
            continue
        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            logger.warning("int8 calibration: cannot open %s; skipped", path)
            continue
        try:
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            stride = video_stride(total, want)
            got = index = 0
            while got < want:
                ok = cap.grab()
                if not ok:
                    break
                if index % stride == 0:
                    ok, image = cap.retrieve()
                    if ok:
                        got += 1
                        yield image
                index += 1
            if got < want:
                logger.warning(
                    "int8 calibration: %s gave %d of the %d frames wanted", path, got, want
                )
        finally:
            cap.release()
