"""The recorder: each recording stream's packet ring, and one writer thread that turns zone
and line events (and requests) into snapshots and clips, announced on the bus.

The pipeline's threads only hand work over: the capture thread appends a packet reference
to its stream's ring, the completer puts one job per event frame into a bounded queue
(``record.queue_size``; beyond it jobs are dropped and counted, never waited for). The writer
thread draws and encodes snapshots, waits for a clip's ``post_s`` packets to arrive, cuts it
from the ring, remuxes it, keeps the directory under its cap and publishes ``snapshot`` and
``clip`` messages. A write that fails (a full disk, a directory it may not write) is an error
line naming the stream and the directory (once a minute per stream), counted in the stream's
``record.errors``; the pipeline goes on.

Events inside a clip still waiting for its packets join that clip (its message lists them
all) rather than making another overlapping file.

Snapshots use the frame's pixels where the CPU decoded it (a reference the completer holds
anyway); a frame NVDEC decoded is on the GPU and given back before its events are known, so
its snapshot is decoded on the CPU from the ring (the GOP up to the event's frame), in the
writer thread: a few milliseconds of CPU per event, and nothing on the GPU.

Entry points for a control API: :meth:`Recorder.snapshot` and :meth:`Recorder.clip` (a path
on success; RecordError saying why not).
"""

from __future__ import annotations

import concurrent.futures
import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streams.bus.messages import record_message, topic
from streams.capture.packet_ring import PacketRing
from streams.config import Config, RecordConfig
from streams.errors import StreamsError
from streams.record.clip import write_clip
from streams.record.decode import decode_frame_at
from streams.record.snapshot import draw_boxes, write_jpeg
from streams.record.store import Store

logger = logging.getLogger(__name__)

# Ring time beyond pre_s + post_s, what an on-demand clip can reach back. A late event needs no
# slack: the ring keeps what unfinished frames may still ask for (PacketRing.finished).
SLACK_S = 2.0
CLIP_WAIT_S = 10.0  # beyond post_s: a stream that stopped gets the clip of what arrived
ERROR_EVERY_S = 60.0  # one error line per stream this often; the rest are counted
TICK_S = 0.05
# A clip is cut once packets shown this long after its end arrived: with B-frames a later
# picture's packet comes before the ones shown up to the end.
REORDER_S = 0.5


class RecordError(StreamsError):
    """A snapshot or clip could not be made (the message says which stream and why)."""


@dataclass
class RecordCounts:
    """One stream's recorder figures, in ``stats`` as ``record``."""

    ring: PacketRing | None = None
    snapshots: int = 0
    clips: int = 0
    dropped: int = 0  # jobs the full queue refused
    errors: int = 0

    def snapshot(self) -> dict:
        ring = self.ring
        return {
            "snapshots": self.snapshots,
            "clips": self.clips,
            "dropped": self.dropped,
            "errors": self.errors,
            "buffer_bytes": ring.bytes if ring is not None else 0,
            "buffer_s": round(ring.span_s(), 3) if ring is not None else 0.0,
        }


@dataclass
class _Seen:
    """A stream's latest frame and its boxes: what an on-demand snapshot draws."""

    image: np.ndarray | None
    pts_s: float
    seq: int
    boxes: np.ndarray
    class_ids: np.ndarray
    track_ids: np.ndarray | None


@dataclass
class _Job:
    stream_id: str
    seen: _Seen
    events: list[dict]  # event messages of one frame (may be empty: a request)
    snapshot: bool
    clip: bool
    start_s: float = 0.0
    end_s: float = 0.0
    segment: int | None = None  # the event frame's (Frame.segment); None: the current one
    due_mono_s: float = 0.0
    future: concurrent.futures.Future | None = None  # requests: the path, or the error
    ring: PacketRing | None = None  # clips: the ring it holds packets of (from start_s)
    hold: int = 0
    paths: list[str] = field(default_factory=list)


class Recorder:
    """Rings for the streams with ``record.enabled``, and the writer thread.

    Args:
        config: the validated config (``record`` and each stream's).
        publish: ``(topic, message)`` -> queued (the publisher's ``publish``).
        labels: class names, for drawing.
    """

    def __init__(
        self, config: Config, publish: Callable[[str, dict], Any], labels: Sequence[str]
    ) -> None:
        self._publish = publish
        self.labels = tuple(labels)
        self.store = Store(config.record.dir, config.record.max_bytes)
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=config.record.queue_size)
        self.counts: dict[str, RecordCounts] = {}
        self._rings: dict[str, PacketRing] = {}
        self._streams: dict[str, RecordConfig] = {}
        self._seen: dict[str, _Seen] = {}
        self._errors_logged: dict[str, float] = {}
        self._pending: list[_Job] = []
        self.configure(config)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._started = False

    @property
    def active(self) -> bool:
        return bool(self._streams)

    def configure(self, config: Config) -> None:
        """The streams that record (at start and after a reload)."""
        self._streams = {s.id: s.record for s in config.streams if s.record.enabled}
        for stream_id in list(self.counts):
            if stream_id not in self._streams:
                self.counts.pop(stream_id, None)
                self._rings.pop(stream_id, None)
                self._seen.pop(stream_id, None)

    def ring_for(self, stream_id: str) -> PacketRing | None:
        """A new ring for the stream's capture worker (None: it does not record)."""
        record = self._streams.get(stream_id)
        if record is None:
            return None
        ring = PacketRing(
            record.pre_s + record.post_s + SLACK_S, record.buffer_bytes, follows_frames=True
        )
        self._rings[stream_id] = ring
        self.counts.setdefault(stream_id, RecordCounts()).ring = ring
        return ring

    def start(self) -> None:
        if self.active and not self._started:
            self._started = True
            self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued and pending (clips with the packets there are), then stop."""
        if not self._started:
            return
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            pass
        self._thread.join(timeout_s)

    # --- the completer thread ----------------------------------------------------------------

    def seen(
        self,
        frames: Sequence[Any],
        decoded: Sequence[Any],
        track_ids: Sequence[np.ndarray | None] | None,
        frame_events: Sequence[tuple[int, list[dict]]],
    ) -> None:
        """A batch's frames (``streams.capture.frames.Frame``) and boxes; ``frame_events``:
        (index in the batch, that frame's event messages). Keeps each recording stream's
        latest frame (a reference) and queues one job per event frame."""
        streams = self._streams
        if not streams:
            return
        seen, rings = self._seen, self._rings
        for i, frame in enumerate(frames):
            record = streams.get(frame.stream_id)
            if record is not None:
                seen[frame.stream_id] = _seen(frame, decoded[i], track_ids, i)
                ring = rings.get(frame.stream_id)
                if ring is not None:  # its packets from here on may still make a clip
                    ring.finished(frame.pts_s - record.pre_s)
        for i, events in frame_events:
            stream_id = frames[i].stream_id
            record = streams.get(stream_id)
            if record is None:
                continue
            events = [e for e in events if e["event"] in record.events]
            if not events or not (record.snapshots or record.clips):
                continue
            frame = frames[i]
            job = _Job(
                stream_id,
                _seen(frame, decoded[i], track_ids, i),
                events,
                record.snapshots,
                record.clips,
                start_s=frame.pts_s - record.pre_s,
                end_s=frame.pts_s + record.post_s,
                segment=frame.segment,
            )
            ring = self._rings.get(stream_id) if record.clips else None
            if ring is not None:  # its packets stay until the clip is cut
                job.ring, job.hold = ring, ring.hold(job.start_s)
            self._put(job)

    def _put(self, job: _Job) -> bool:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.counts.setdefault(job.stream_id, RecordCounts()).dropped += 1
            _release(job)
            return False
        return True

    # --- on demand (any thread) --------------------------------------------------------------

    def snapshot(self, stream_id: str, timeout_s: float = 10.0) -> str:
        """A snapshot of the stream's latest frame with its boxes, now; returns its path."""
        return self._request(stream_id, snapshot=True, seconds=0.0, timeout_s=timeout_s)

    def clip(self, stream_id: str, seconds: float, timeout_s: float = 20.0) -> str:
        """A clip of the stream's last ``seconds`` (at most what its ring holds), now;
        returns its path."""
        if not seconds > 0:
            raise RecordError(f"clip: seconds must be > 0, got {seconds!r}")
        return self._request(stream_id, snapshot=False, seconds=seconds, timeout_s=timeout_s)

    def _request(self, stream_id: str, snapshot: bool, seconds: float, timeout_s: float) -> str:
        if stream_id not in self._streams:
            raise RecordError(
                f"stream {stream_id}: not recording (record.enabled is off for it, or no "
                f"such stream); recording: {', '.join(self._streams) or 'none'}"
            )
        seen = self._seen.get(stream_id)
        if seen is None:
            raise RecordError(f"stream {stream_id}: no frame processed yet")
        ring = self._rings.get(stream_id)
        newest = ring.newest_s if ring is not None else seen.pts_s
        future: concurrent.futures.Future = concurrent.futures.Future()
        job = _Job(
            stream_id,
            seen,
            [],
            snapshot,
            not snapshot,
            start_s=newest - seconds,
            end_s=newest,
            future=future,
        )
        if not self._put(job):
            raise RecordError(f"stream {stream_id}: the recorder's queue is full")
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError as err:
            raise RecordError(f"stream {stream_id}: not written within {timeout_s:g} s") from err

    # --- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping or self._pending:
            try:
                job = self._queue.get(timeout=TICK_S)
                while True:  # every job queued by now, before cutting: events join clips
                    if job is None:
                        stopping = True
                    else:
                        self._take(job)
                    job = self._queue.get_nowait()
            except queue.Empty:
                pass
            self._cut_due(final=stopping)

    def _take(self, job: _Job) -> None:
        if job.snapshot:
            try:
                self._write_snapshot(job)
            except Exception as err:  # noqa: BLE001 - one job, never the thread
                self._failed(job, err, "snapshot")
        if job.future is None:  # its own copy of the frame's view: a waiting clip needs no pixels
            job.seen.image = None
        if job.clip:
            try:
                self._queue_clip(job)
            except Exception as err:  # noqa: BLE001
                _release(job)
                self._failed(job, err, "clip")

    def _queue_clip(self, job: _Job) -> None:
        ring = self._rings.get(job.stream_id)
        if ring is None:
            raise RecordError(f"stream {job.stream_id}: no packets to cut a clip from")
        for pending in self._pending:
            if (
                pending.stream_id == job.stream_id
                and pending.future is None
                and job.future is None
                and pending.segment == job.segment
                and pending.start_s <= job.seen.pts_s <= pending.end_s
            ):
                pending.events += job.events  # within that clip: one file for both
                _release(job)
                return
        if job.segment is None:
            job.segment = ring.segment
        job.due_mono_s = time.monotonic() + (job.end_s - job.seen.pts_s) + CLIP_WAIT_S
        self._pending.append(job)

    def _cut_due(self, final: bool) -> None:
        """Clips whose last packet arrived (or whose stream stopped, or restarted: what there
        is) are cut and written."""
        now = time.monotonic()
        for job in list(self._pending):
            ring = self._rings.get(job.stream_id)
            ready = (
                ring is None
                or job.future is not None  # asked for: what the ring holds now
                or ring.newest_s >= job.end_s + REORDER_S
                or ring.segment != job.segment  # the stream moved on: what its segment had
                or now >= job.due_mono_s
                or final
            )
            if not ready:
                continue
            self._pending.remove(job)
            try:
                self._write_clip(job, ring)
            except Exception as err:  # noqa: BLE001
                self._failed(job, err, "clip")
            finally:
                _release(job)

    def _write_snapshot(self, job: _Job) -> None:
        seen = job.seen
        image = seen.image
        if image is None:  # decoded on the GPU: decode the event's frame from the ring
            image = self._decode_frame(job.stream_id, seen.pts_s)
        highlight = {int(e["track_id"]) for e in job.events}
        labels = self.labels
        names = [labels[c] if 0 <= c < len(labels) else str(c) for c in seen.class_ids.tolist()]
        drawn = draw_boxes(image, seen.boxes, names, _list(seen.track_ids), highlight)
        path = self._path(job, seen.pts_s, "jpg")
        try:
            write_jpeg(drawn, path)
        except Exception:
            path.unlink(missing_ok=True)  # a full disk leaves no half a file behind
            raise
        self.store.added(path)
        self.counts.setdefault(job.stream_id, RecordCounts()).snapshots += 1
        self._announce("snapshot", job, path, pts_s=seen.pts_s, seq=seen.seq)

    def _write_clip(self, job: _Job, ring: PacketRing | None) -> None:
        segment = None if job.future is not None else job.segment  # asked for: the latest
        cut = ring.cut(job.start_s, job.end_s, segment) if ring is not None else None
        if cut is None:
            raise RecordError(
                f"stream {job.stream_id}: no packets for a clip at {job.seen.pts_s:.2f} s "
                "(none kept of its segment, or its ring is empty)"
            )
        path = self._path(job, job.seen.pts_s if job.events else cut.entries[0].pts_s, "mp4")
        try:
            first_s, last_s = write_clip(cut, path)
        except Exception:
            path.unlink(missing_ok=True)
            raise
        self.store.added(path)
        self.counts.setdefault(job.stream_id, RecordCounts()).clips += 1
        self._announce("clip", job, path, start_s=first_s, end_s=last_s)

    def _decode_frame(self, stream_id: str, pts_s: float) -> np.ndarray:
        ring = self._rings.get(stream_id)
        cut = ring.cut(pts_s, pts_s) if ring is not None else None
        if cut is None:
            raise RecordError(f"stream {stream_id}: the frame at {pts_s:.2f} s is not in its ring")
        return decode_frame_at(cut, pts_s)

    def _path(self, job: _Job, pts_s: float, suffix: str) -> Path:
        """``<dir>/<stream>/<UTC time>_<seq or "req">_<event>.<suffix>``, unique."""
        directory = self.store.stream_dir(job.stream_id)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        what = (
            f"{job.seen.seq:08d}_{job.events[0]['event']}"
            if job.events
            else f"{job.seen.seq:08d}_request"
        )
        name = f"{stamp}_{what}"
        path = directory / f"{name}.{suffix}"
        n = 1
        while path.exists():
            n += 1
            path = directory / f"{name}_{n}.{suffix}"
        return path

    def _announce(self, kind: str, job: _Job, path: Path, **times: Any) -> None:
        message = record_message(
            kind,
            stream_id=job.stream_id,
            path=str(path),
            size=path.stat().st_size,
            trigger="event" if job.events else "request",
            events=[_event_ref(e) for e in job.events],
            **times,
        )
        self._publish(topic(kind, job.stream_id), message)
        logger.debug("stream %s: %s %s", job.stream_id, kind, path)
        if job.future is not None and not job.future.done():
            job.future.set_result(str(path))

    def _failed(self, job: _Job, err: Exception, what: str) -> None:
        counts = self.counts.setdefault(job.stream_id, RecordCounts())
        counts.errors += 1
        reason = _explain(err, self.store.directory)
        message = f"stream {job.stream_id}: cannot write its {what} into {self.store.directory}: "
        if job.future is not None and not job.future.done():
            job.future.set_exception(RecordError(message + reason))
        now = time.monotonic()
        if now - self._errors_logged.get(job.stream_id, -ERROR_EVERY_S) >= ERROR_EVERY_S:
            self._errors_logged[job.stream_id] = now
            logger.error("%s%s (%d so far; the pipeline goes on)", message, reason, counts.errors)


def _release(job: _Job) -> None:
    if job.ring is not None:
        job.ring.release(job.hold)
        job.ring = None


def _seen(frame: Any, detections: Any, track_ids: Sequence | None, index: int) -> _Seen:
    return _Seen(
        frame.image_bgr,
        frame.pts_s,
        frame.seq,
        detections.xyxy,
        detections.class_ids,
        None if track_ids is None else track_ids[index],
    )


def _list(ids: np.ndarray | None) -> list[int] | None:
    return None if ids is None else [int(v) for v in ids]


def _event_ref(event: dict) -> dict:
    ref = {"event": event["event"]}
    for key in ("zone", "line", "track_id", "pts", "seq"):
        if key in event:
            ref[key] = event[key]
    return ref


def _explain(err: Exception, directory: Path) -> str:
    """An OSError in words (a full disk, no permission), anything else as it says."""
    if isinstance(err, OSError) and err.errno is not None:
        words = {
            errno.ENOSPC: "the disk is full (no space left on device)",
            errno.EDQUOT: "the disk quota is exceeded",
            errno.EACCES: "permission denied (the directory is not writable by this user)",
            errno.EPERM: "operation not permitted",
            errno.EROFS: "the file system is read-only",
        }.get(err.errno, os.strerror(err.errno))
        where = f" ({err.filename})" if err.filename else ""
        return f"{words}{where}"
    text = str(err)
    if "No space left" in text:
        return f"the disk is full (no space left on device): {text}"
    return text or type(err).__name__
