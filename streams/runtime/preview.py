"""The browser view's pictures, made in the process that has the frames: ``preview/<id>/``.

Only for a stream somebody subscribes to exactly ``preview/<id>/`` (the publisher's XPUB says
who does, through the supervisor's relay too), at most ``preview.fps`` a second per stream,
scaled to ``preview.max_width``, annotated (boxes, labels, scores, track ids, zones, lines)
and JPEG-encoded by OpenCV on a thread of its own, which keeps only each stream's newest
picture: a slow encode never holds up the completer, and pictures it cannot keep up with are
skipped, not queued.

Nobody watching costs one attribute read and one comparison per batch (``due``): no copy,
no download, no encode. On the GPU path the picture is the slot's model input (the
letterboxed frame the detector saw), copied to pinned host memory on the slot's stream for
the watched frames only (streams/runtime/preprocess.py); on the CPU path, the decoded frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from processors.detections import Detections
from processors.letterbox import Letterbox
from streams.bus.messages import preview_payload, topic_bytes
from streams.config import Config, PreviewConfig, StreamConfig

logger = logging.getLogger(__name__)

PREFIX = b"preview/"


def watched_streams(subscribed: frozenset[bytes]) -> frozenset[str]:
    """Stream ids whose exact ``preview/<id>/`` topic somebody subscribes to. A subscription
    to ``preview/`` or to everything does not count: it would make every stream's pictures
    for a client that may only want ``det``."""
    return frozenset(
        t[len(PREFIX) : -1].decode(errors="replace")
        for t in subscribed
        if t.startswith(PREFIX) and t.endswith(b"/") and len(t) > len(PREFIX) + 1
    )


@dataclass
class PreviewJob:
    """One picture to make: what the completer hands the preview thread."""

    stream_id: str
    seq: int
    pts_s: float
    capture_wall_s: float
    source_hw: tuple[int, int]
    image: np.ndarray  # HWC BGR uint8 (a host frame) or CHW float RGB in [0, 1] (model input)
    letterbox: Letterbox | None  # set when ``image`` is the model input
    detections: Detections
    track_ids: np.ndarray | None
    stream: StreamConfig | None  # its zones and lines


class PreviewMaker:
    """Decides which frames get a picture (``due``), takes them (``offer``) and makes them on
    its thread. ``encoded`` counts pictures made (tests and benchmarks read it)."""

    def __init__(self, publisher, labels: Sequence[str], config: PreviewConfig) -> None:
        self._publisher = publisher
        self.labels = tuple(labels)
        self.config = config
        self._period_s = 1.0 / config.fps
        self._seen: frozenset[bytes] | None = None
        self._watched: frozenset[str] = frozenset()
        self._last_mono_s: dict[str, float] = {}
        self._pending: dict[str, PreviewJob] = {}
        self._wake = threading.Condition()
        self._stopping = False
        self.encoded = 0
        self.skipped = 0  # replaced by a newer picture before the thread got to it
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="preview", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(2.0)

    @property
    def watched(self) -> frozenset[str]:
        subscribed = self._publisher.subscribed
        if subscribed is not self._seen:  # recomputed only when a subscription changed
            self._seen = subscribed
            self._watched = watched_streams(subscribed)
        return self._watched

    def due(self, frames: Sequence) -> list[int]:
        """Indices of the batch's frames to picture (the batcher asks, once per batch)."""
        watched = self.watched
        if not watched:
            return []
        now_s = time.monotonic()
        last, period_s, rows = self._last_mono_s, self._period_s, []
        for i, frame in enumerate(frames):
            stream_id = frame.stream_id
            if stream_id in watched and now_s - last.get(stream_id, -1e9) >= period_s:
                last[stream_id] = now_s
                rows.append(i)
        return rows

    def offer(self, jobs: list[PreviewJob]) -> None:
        """Hand pictures to the thread; each stream keeps only its newest."""
        if not jobs:
            return
        with self._wake:
            for job in jobs:
                if self._pending.get(job.stream_id) is not None:
                    self.skipped += 1
                self._pending[job.stream_id] = job
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                jobs, self._pending = list(self._pending.values()), {}
            for job in jobs:
                try:
                    payload = self.make(job)
                except Exception:  # one bad picture must not end the view
                    self.failed += 1
                    logger.exception("preview of stream %s failed", job.stream_id)
                    continue
                self.encoded += 1
                self._publisher.publish_encoded([(topic_bytes("preview", job.stream_id), payload)])

    def make(self, job: PreviewJob) -> bytes:
        """The annotated, scaled JPEG of one job, with its header (docs/messages.md)."""
        import cv2

        from processors.annotate import draw_detections, draw_zones

        image, scale = _picture(job, self.config.max_width)
        detections = job.detections
        if job.stream is not None and (job.stream.zones or job.stream.lines):
            zones, lines = stream_geometry(job.stream, job.source_hw)
            draw_zones(image, zones, lines, scale)
        draw_detections(
            image,
            detections.xyxy,
            detections.scores,
            detections.class_ids,
            self.labels,
            scale,
            job.track_ids,
        )
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.config.quality])
        if not ok:
            raise ValueError("OpenCV could not encode the picture as JPEG")
        return preview_payload(
            stream_id=job.stream_id,
            seq=job.seq,
            pts_s=job.pts_s,
            capture_wall_s=job.capture_wall_s,
            source_hw=job.source_hw,
            picture_hw=image.shape[:2],
            detections=len(detections),
            jpeg=jpeg.tobytes(),
        )


def _picture(job: PreviewJob, max_width: int) -> tuple[np.ndarray, float]:
    """The BGR picture at most ``max_width`` wide, and its pixels per source pixel."""
    import cv2

    if job.letterbox is None:
        image = job.image
        scale = 1.0
    else:  # the model input: CHW RGB [0, 1], the frame scaled by ``letterbox.scale``, padded
        box = job.letterbox
        w, h = box.resized_wh
        chw = job.image[::-1, box.pad_y : box.pad_y + h, box.pad_x : box.pad_x + w]
        image = np.ascontiguousarray(
            (np.asarray(chw, np.float32).transpose(1, 2, 0) * 255.0).clip(0, 255),
            dtype=np.uint8,
        )
        scale = box.scale
    height, width = image.shape[:2]
    if width > max_width:
        size = (max_width, max(1, round(height * max_width / width)))
        scale *= max_width / width
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    elif job.letterbox is None:
        image = image.copy()  # drawn on: never on the decoder's frame
    return image, scale


def stream_geometry(
    stream: StreamConfig, source_hw: tuple[int, int]
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray, np.ndarray]]]:
    """A stream's zones and lines in source pixels (``units: fraction`` scaled to the frame)."""
    size = np.array([source_hw[1], source_hw[0]], np.float64)

    def pixels(points, units: str) -> np.ndarray:
        xy = np.array(points, np.float64)
        return xy * size if units == "fraction" else xy

    zones = [(z.name, pixels(z.points, z.units)) for z in stream.zones]
    lines = []
    for line in stream.lines:
        a, b = pixels((line.a, line.b), line.units)
        lines.append((line.name, a, b))
    return zones, lines


def jobs_for(
    rows: list[int],
    frames: Sequence,
    decoded: Sequence[Detections],
    track_ids: Sequence[np.ndarray | None] | None,
    config: Config,
    pictures: dict[int, tuple[np.ndarray, Letterbox]] | None = None,
) -> list[PreviewJob]:
    """The jobs of a batch's ``rows`` (indices into the batch as the batcher formed it).

    ``pictures``: row -> (model input copied to the host, its letterbox) on the GPU path;
    otherwise each frame's decoded image is the picture (a reference: nothing is copied here).
    """
    streams = {s.id: s for s in config.streams} if rows else {}
    jobs = []
    for i in rows:
        frame = frames[i]
        if pictures is not None:
            if i not in pictures:
                continue
            image, letterbox = pictures[i]
        elif frame.image_bgr is None:
            continue
        else:
            image, letterbox = frame.image_bgr, None
        jobs.append(
            PreviewJob(
                stream_id=frame.stream_id,
                seq=frame.seq,
                pts_s=frame.pts_s,
                capture_wall_s=frame.capture_wall_s,
                source_hw=frame.source_hw,
                image=image,
                letterbox=letterbox,
                detections=decoded[i],
                track_ids=None if track_ids is None else track_ids[i],
                stream=streams.get(frame.stream_id),
            )
        )
    return jobs
