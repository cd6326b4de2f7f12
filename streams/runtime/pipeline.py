"""The pipeline's lifecycle: capture workers -> batcher -> engine -> postprocess -> publisher.

Two threads move batches: ``batcher`` forms a batch, letterboxes each frame straight into a
free engine slot and submits it; ``completer`` waits for results in submission order, decodes
detections and publishes. With two or more engine slots, batch k+1 is prepared while batch k
runs. Engines, processors and the publisher know nothing of each other.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from engines.base import Engine, EngineSlot
from processors.detections import Detections
from processors.letterbox import Letterbox
from processors.track import MultiStreamTracker, TrackerParams
from processors.yolo import decode_yolo_batch, detect_head_format
from streams.bus.messages import (
    encode_detection_batch,
    stats_message,
    status_message,
    topic,
)
from streams.bus.publisher import Publisher
from streams.capture.frames import Frame
from streams.capture.worker import CaptureContext, CaptureWorker
from streams.config import Config, StreamConfig, TrackingConfig
from streams.errors import EngineError
from streams.record.recorder import RecordCounts, Recorder
from streams.runtime.analytics import AnalyticsStage, plan_analytics
from streams.runtime.board import FrameBoard
from streams.runtime.preprocess import choose_preprocess
from streams.runtime.preview import PreviewMaker, jobs_for
from streams.runtime.reload import ReloadPlan, ReloadRefused, plan_reload, stream_differences
from streams.runtime.runnable import wait_until_done
from streams.runtime.sources import resolve_sources
from streams.runtime.stats import PipelineStats, StreamStats, with_shard
from streams.states import StreamState, advance

logger = logging.getLogger(__name__)

# Consecutive batches that fail (inference or decode) before the pipeline gives up: one bad
# batch is skipped, a GPU that fails every batch (a sticky CUDA error) is not a pipeline.
MAX_FAILED_BATCHES = 20
RETIRE_JOIN_S = 2.0  # how long a reload waits for a stopped stream's worker to leave


@dataclass
class _Batch:
    frames: list[Frame]
    boxes: list[Letterbox]
    slot: EngineSlot
    started_mono_s: float
    submitted_mono_s: float
    preview_rows: list[int]  # frames the browser view gets a picture of (most batches: none)
    pictures: dict[int, tuple[np.ndarray, Letterbox]] | None = None  # GPU: their model input


class Pipeline:
    """Runs every configured stream through one engine and publishes results.

    Args:
        config: the validated configuration.
        engine: a ready engine (ONNX Runtime or TensorRT).
        publisher: a bound publisher.
        sources: stream id -> local path or URL to open (``sample:`` names resolved).
        labels: class names of the model.
        model_name: reported in every ``det`` message.
    """

    def __init__(
        self,
        config: Config,
        engine: Engine,
        publisher: Publisher,
        sources: dict[str, str],
        labels: Sequence[str],
        model_name: str,
        stats: PipelineStats | None = None,
        stats_sink: Callable[[dict], None] | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.publisher = publisher
        self.labels = tuple(labels)
        self.model_name = model_name
        self.stats = stats or publisher.stats
        # Where snapshots go every stats interval: a ``stats`` message, or (in a worker
        # process) the supervisor, which publishes one merged message for all workers.
        self._stats_sink = stats_sink or self._publish_snapshot
        self.stream_stats = {s.id: StreamStats(s.id) for s in config.streams}
        self.head_format = self._head_format()
        self._board = FrameBoard()
        self._stop_batching = threading.Event()
        self._in_flight: queue.Queue[_Batch | None] = queue.Queue()
        self._preprocess = choose_preprocess(engine)
        prepare_graphs = getattr(engine, "prepare_graphs", None)  # engines with CUDA graphs
        if prepare_graphs is not None:
            prepare_graphs(input_on_device=self._preprocess.on_device)
        # What every capture worker shares; each gets its own copy with its own stop event,
        # so that a reload can stop one stream.
        self._capture = CaptureContext(
            config.capture, self._board, self._on_status, threading.Event(), self._nvdec_gpu()
        )
        self._capture_stopped = False
        self._reload_lock = threading.Lock()  # one reload at a time, never during stop()
        # Snapshots and clips of events (streams with record.enabled): their packet rings
        # go to their capture workers; the writer is a thread of its own. snapshot() and
        # clip() on it are the entry points for a control API.
        self.recorder = Recorder(config, publisher.publish, self.labels)
        # Replaced, never changed in place (other threads iterate them): stream id -> ...
        self._workers: dict[str, CaptureWorker] = {
            s.id: self._new_worker(s, sources[s.id]) for s in config.streams
        }
        self._batcher = threading.Thread(target=self._batch_loop, name="batcher", daemon=True)
        self._completer = threading.Thread(
            target=self._complete_loop, name="completer", daemon=True
        )
        self._stats_thread = threading.Thread(target=self._stats_loop, name="stats", daemon=True)
        self._started_mono_s = 0.0
        self._done = threading.Event()
        self._failed_batches = 0
        self._batcher_round_mono_s = 0.0  # the batcher's last time round its loop
        self.fatal: str | None = None  # why the pipeline gave up, if it did
        # Tracking, the completer's alone: one tracker per distinct set of parameters (one
        # for all streams unless a stream overrides them), each stream's last segment.
        self._trackers: dict[TrackerParams, MultiStreamTracker] = {}
        # Added to every track id: a worker process restarted by the supervisor gets a new
        # base, so a stream's ids are not reused after the restart (ids are unique within
        # one run of `streams run`; see docs/messages.md).
        self.track_id_base = 0
        self._tracked_in: Config | None = None  # the config _tracked_params was made from
        self._tracked_params: dict[str, TrackerParams] = {}
        self._segments: dict[str, int] = {}
        # Zones and lines, the completer's too once it runs (configured here first, so that
        # a class name the labels lack fails the start and stats show zeros from the start).
        self._analytics = AnalyticsStage(self.labels)
        self._analytics.configure(config, self.stream_stats)
        self._analytics_in: Config = config
        self._status_lock = threading.Lock()  # a state and its message change together
        self._live_detail: dict[str, dict] = {}  # each stream's last `live` width/height/decoder
        # The browser view's pictures, for watched streams only (streams/runtime/preview.py).
        self.preview = PreviewMaker(publisher, self.labels, config.preview)

    def _new_worker(self, stream: StreamConfig, source: str, first_seq: int = 0) -> CaptureWorker:
        """A capture worker whose status events count only while it is the stream's current
        worker (one a reload replaced may still be leaving a network call)."""
        mine: list[CaptureWorker] = []

        def on_status(stream_id: str, state: StreamState | str, **detail) -> None:
            if self._workers.get(stream_id) is mine[0]:
                self._on_status(stream_id, state, **detail)

        context = replace(self._capture, on_status=on_status, stop=threading.Event())
        ring = self.recorder.ring_for(stream.id)
        stats = self.stream_stats[stream.id]
        stats.record = (
            None if ring is None else self.recorder.counts.setdefault(stream.id, RecordCounts())
        )
        mine.append(CaptureWorker(stream, source, stats, context, first_seq, ring))
        return mine[0]

    def _stop_capture(self) -> None:
        with self._reload_lock:
            self._capture_stopped = True
            for worker in self._workers.values():
                worker.stop()

    def _nvdec_gpu(self) -> int | None:
        """The GPU whose NVDEC decodes the streams, or None (logged once, with the reason)."""
        wanted = [s for s in self.config.streams if s.decoder != "opencv"]
        if not wanted:
            return None
        gpu = self._preprocess.gpu
        if gpu is None:
            if any(s.decoder == "nvdec" for s in wanted):
                logger.warning(
                    "decoder nvdec needs the TensorRT backend (frames stay on the "
                    "GPU); decoding with OpenCV"
                )
            return None
        from streams.capture.nvdec import nvdec_available

        usable, reason = nvdec_available(gpu)
        logger.info("decoder auto -> %s: %s", "nvdec" if usable else "opencv", reason)
        return gpu if usable else None

    def _head_format(self) -> str:
        head = self.config.model.head
        if head != "auto":
            return head
        output_shape = tuple(self.engine.output_specs[0].shape)
        try:
            return detect_head_format(output_shape, len(self.labels))
        except ValueError as err:
            raise EngineError(
                f"model: output {self.engine.output_specs[0].name!r} is not a YOLO "
                f"head ({err}); set model.head to yolov5 or yolov8"
            ) from err

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, cancel: threading.Event | None = None) -> None:
        """Start every thread (quick: nothing here can be slow enough to need ``cancel``)."""
        self._started_mono_s = self._batcher_round_mono_s = time.monotonic()
        self.recorder.start()
        self.preview.start()
        self._completer.start()
        self._batcher.start()
        for worker in self._workers.values():
            worker.start()
        self._stats_thread.start()
        logger.info(
            "pipeline started: %d streams, %s backend, max batch %d, head %s",
            len(self._workers),
            self.engine.backend,
            self.engine.max_batch,
            self.head_format,
        )

    def all_streams_finished(self) -> bool:
        return all(not w.thread.is_alive() for w in self._workers.values())

    def stalled_s(self) -> float:
        """Seconds since the batcher last went round its loop (at least every 0.1 s while it
        is healthy, frames or not): a large value means a wedged engine or batcher."""
        return time.monotonic() - self._batcher_round_mono_s

    def wait(self, duration_s: float | None = None, stop: threading.Event | None = None) -> str:
        """Block until ``duration_s`` passes, ``stop`` is set or every stream has finished."""
        return wait_until_done(self, duration_s, stop)

    def stop(self, timeout_s: float = 4.0) -> None:
        """Stop capture, drain queued frames and batches in flight, publish ``ended``.

        The engine and publisher belong to the caller and stay open.
        """
        deadline = time.monotonic() + timeout_s
        self._stop_capture()
        for worker in self._workers.values():
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        self._stop_batching.set()
        self._board.close()
        self._batcher.join(max(0.0, deadline - time.monotonic()))
        self._board.release_all()
        self._in_flight.put(None)
        self._completer.join(max(0.0, deadline - time.monotonic()))
        if not self._completer.is_alive():
            self._preprocess.close()
        self.recorder.close()  # the clips still waiting get what arrived
        self.preview.stop()
        self._done.set()
        self._stats_thread.join(1.0)
        for stream_stats in self.stream_stats.values():
            if not stream_stats.state.terminal:
                self._on_status(
                    stream_stats.stream_id, StreamState.ENDED, reason="pipeline stopped"
                )
        self._publish_stats()

    # --- reload -------------------------------------------------------------------------------

    def reload(self, config: Config, sources: dict[str, str] | None = None) -> ReloadPlan:
        """Apply a new config's streams: removed ones stop and publish ``ended``, changed ones
        restart (``reconnecting``, then ``connecting``; ``seq`` carries on), added ones start,
        ones whose ``fps``, ``zones`` or ``lines`` alone changed keep running with them (a
        ``live`` note says so; their zone state starts afresh); the others are not touched.
        Raises ReloadRefused (the running config stays) if
        anything but ``streams:`` differs.

        Args:
            config: the new, validated config. sources: its stream id -> path or URL
                (default: resolved here, ``sample:`` names fetched if missing).
        """
        plan = plan_reload(self.config, config)
        plan_analytics(config, self.labels)  # ConfigError for a class the labels lack
        if sources is None:
            sources = resolve_sources(config)
        with self._reload_lock:
            if self._capture_stopped:
                raise ReloadRefused("the pipeline is stopping")
            old_config = {s.id: s for s in self.config.streams}
            leaving = [self._workers[i] for i in plan.removed + plan.changed]
            for worker in leaving:
                worker.stop()
            for worker in leaving:  # a file stops at once; a camera at its next read
                worker.thread.join(RETIRE_JOIN_S)
            removed = [self.stream_stats[i] for i in plan.removed]
            stats = {i: s for i, s in self.stream_stats.items() if i not in plan.removed}
            stats.update({i: StreamStats(i) for i in plan.added})
            self.stream_stats = {s.id: stats[s.id] for s in config.streams}
            # From here on the leaving workers' late events and in-flight frames are dropped.
            kept = {i: w for i, w in self._workers.items() if w not in leaving}
            self._workers = kept
            for stream_id in plan.removed + plan.changed:
                self._board.discard(stream_id)
            for stream_stats in removed:
                if not stream_stats.state.terminal:
                    self._announce(
                        stream_stats, StreamState.ENDED, reason="removed from the config"
                    )
            with self._status_lock:
                for stream_id in plan.removed:
                    self._live_detail.pop(stream_id, None)
            by_id = {s.id: s for s in config.streams}
            seqs = {w.stream.id: w.next_seq for w in leaving}
            for stream_id in plan.changed:
                keys = ", ".join(stream_differences(old_config[stream_id], by_id[stream_id]))
                self._announce(
                    self.stream_stats[stream_id],
                    StreamState.RECONNECTING,
                    reason=f"restarting: the config changed ({keys})",
                )
            self.recorder.configure(config)
            self.recorder.start()
            starting = {
                i: self._new_worker(by_id[i], sources[i], seqs.get(i, 0))
                for i in plan.added + plan.changed
            }
            self._workers = {s.id: kept.get(s.id) or starting[s.id] for s in config.streams}
            for stream_id in plan.retuned:
                self._workers[stream_id].retune(by_id[stream_id])
            self.config = config
            for worker in starting.values():
                worker.start()
            for stream_id in plan.retuned:
                keys = ", ".join(stream_differences(old_config[stream_id], by_id[stream_id]))
                self._live_note(stream_id, f"changed in place ({keys})")
        return plan

    # --- status and stats --------------------------------------------------------------------

    def _on_status(self, stream_id: str, state: StreamState | str, **detail) -> None:
        self._announce(self.stream_stats[stream_id], state, **detail)

    def _announce(self, stats: StreamStats, state: StreamState | str, **detail) -> None:
        with self._status_lock:
            self._announce_locked(stats, state, **detail)

    def _announce_locked(self, stats: StreamStats, state: StreamState | str, **detail) -> None:
        stream_id = stats.stream_id
        state = stats.state = advance(stats.state, state)
        if state is StreamState.LIVE and "decoder" in detail:
            self._live_detail[stream_id] = {
                key: detail[key] for key in ("width", "height", "decoder") if key in detail
            }
        log = (
            logger.warning
            if state in (StreamState.RECONNECTING, StreamState.FAILED)
            else logger.info
        )
        if state is not StreamState.RECONNECTING:  # the worker logged it with its delay
            log(
                "stream %s: %s%s",
                stream_id,
                state,
                f" ({detail['reason']})" if detail.get("reason") else "",
            )
        self.publisher.publish(
            topic("status", stream_id), status_message(stream_id, state.value, **detail)
        )

    def snapshot(self) -> dict:
        return {
            "uptime_s": time.monotonic() - self._started_mono_s,
            "streams": [s.snapshot() for s in self.stream_stats.values()],
            "pipeline": with_shard(self.stats.snapshot(), self.config),
            "stalled_s": self.stalled_s(),  # for a supervisor's watchdog; not published
        }

    def _publish_stats(self) -> None:
        self._stats_sink(self.snapshot())

    def _publish_snapshot(self, snap: dict) -> None:
        self.publisher.publish(
            topic("stats"), stats_message(snap["streams"], snap["pipeline"], snap["uptime_s"])
        )

    def _stats_loop(self) -> None:
        while not self._done.wait(self.config.publish.stats_interval_s):
            self._publish_stats()

    # --- the two batch threads ----------------------------------------------------------------

    def _batch_loop(self) -> None:
        max_batch = self.engine.max_batch
        max_wait_s = self.config.batch.max_wait_ms / 1000.0
        try:
            while True:
                self._batcher_round_mono_s = time.monotonic()
                # Take a free slot first, frames second: frames are picked as late as
                # possible, so they are the newest and do not age while a slot frees up.
                slot = self.engine.acquire()
                frames = self._board.take_batch(max_batch, max_wait_s, timeout_s=0.1)
                if not frames:
                    self.engine.release(slot)
                    if self._stop_batching.is_set():
                        break  # stopped and drained
                    continue
                started_mono_s = time.monotonic()
                boxes = self._preprocess(slot, frames)
                rows = self.preview.due(frames)  # [] unless somebody watches (one check)
                # Before submit: on a GPU the copy is then ordered before the slot's done
                # event, so it has landed once ``wait`` returns.
                pictures = self._preview_download(slot, rows, boxes) if rows else None
                submitted_mono_s = time.monotonic()
                slot.submit(len(frames), input_on_device=self._preprocess.on_device)
                self._in_flight.put(
                    _Batch(frames, boxes, slot, started_mono_s, submitted_mono_s, rows, pictures)
                )
        except Exception:
            logger.exception("batcher crashed; stopping the pipeline")
            self._stop_capture()

    def _preview_download(self, slot: EngineSlot, rows: list[int], boxes: list[Letterbox]):
        """The watched rows' pictures from the GPU (None on the CPU path, or if the copy
        could not be enqueued: logged, and the batch goes on without them)."""
        try:
            return self._preprocess.download(slot, rows, boxes)
        except Exception:
            logger.exception("preview: cannot copy %d pictures from the GPU", len(rows))
            rows.clear()
            return None

    def _batch_failed(self, reason: str) -> None:
        self._failed_batches += 1
        if self._failed_batches >= MAX_FAILED_BATCHES and self.fatal is None:
            self.fatal = f"{self._failed_batches} batches in a row failed, the last: {reason}"
            logger.error("giving up: %s", self.fatal)
            self._stop_capture()

    def _complete_loop(self) -> None:
        model = self.config.model
        while (batch := self._in_flight.get()) is not None:
            try:
                outputs = batch.slot.wait()
            except Exception as err:
                logger.exception("inference failed for a batch of %d frames", len(batch.frames))
                self.engine.release(batch.slot)
                self._batch_failed(f"inference failed: {err}")
                continue
            done_mono_s = time.monotonic()
            inference_ms = (done_mono_s - batch.submitted_mono_s) * 1000.0
            preprocess_ms = (batch.submitted_mono_s - batch.started_mono_s) * 1000.0
            # Outputs may be views of the slot's buffers: decode the whole batch (one call; what
            # it returns owns its memory) before the slot goes back to the batcher, publish after.
            post_began_s = time.monotonic()
            try:
                decoded = decode_yolo_batch(
                    outputs[0],
                    self.head_format,
                    batch.boxes,
                    [frame.source_hw for frame in batch.frames],
                    model.conf_threshold,
                    model.iou_threshold,
                    model.max_detections,
                )
            except Exception as err:  # a bad output must cost this batch, not the pipeline
                logger.exception(
                    "postprocessing failed for a batch of %d frames", len(batch.frames)
                )
                self.engine.release(batch.slot)
                self._batch_failed(f"postprocessing failed: {err}")
                continue
            self._failed_batches = 0
            postprocess_ms = (time.monotonic() - post_began_s) * 1000.0 / len(batch.frames)
            if batch.pictures:  # views of the slot's buffer: copied before it is reused
                batch.pictures = {i: (p.copy(), b) for i, (p, b) in batch.pictures.items()}
            self.engine.release(batch.slot)
            self.stats.batches += 1
            self.stats.batch_frames += len(batch.frames)
            self.stats.inference_ms.add(inference_ms, done_mono_s)
            frames, stream_stats_now = batch.frames, self.stream_stats
            if any(frame.stream_id not in stream_stats_now for frame in frames):
                keep = [i for i, f in enumerate(frames) if f.stream_id in stream_stats_now]
                frames, decoded = [frames[i] for i in keep], [decoded[i] for i in keep]
            try:
                track_ids = self._track(frames, decoded)
            except Exception as err:  # as for postprocessing: this batch, not the pipeline
                logger.exception("tracking failed for a batch of %d frames", len(frames))
                self._batch_failed(f"tracking failed: {err}")
                continue
            # Every message of the batch built and encoded here, in one call, and handed to
            # the publisher thread as one item; ``total`` ends now, just before that.
            now_s = time.monotonic()
            messages, totals_ms = encode_detection_batch(
                frames,
                decoded,
                self.labels,
                model=self.model_name,
                started_mono_s=batch.started_mono_s,
                now_mono_s=now_s,
                preprocess_ms=preprocess_ms,
                inference_ms=inference_ms,
                postprocess_ms=postprocess_ms,
                track_ids=track_ids,
            )
            for frame, total_ms in zip(frames, totals_ms):
                stream_stats = stream_stats_now[frame.stream_id]
                stream_stats.processed += 1
                stream_stats.latency_ms.add(total_ms, now_s)
                if stream_stats.recorded_latency_ms is not None:
                    stream_stats.recorded_latency_ms.append(total_ms)
            if len(messages) < len(frames):  # could not be encoded (logged)
                self.publisher.count_dropped(len(frames) - len(messages))
            self.publisher.publish_encoded(messages)
            # After the det messages: their latency does not include it.
            self._zones_and_lines(frames, decoded, track_ids, stream_stats_now)
            if self.recorder.active:
                self._record(frames, decoded, track_ids)
            if batch.preview_rows:
                self._offer_previews(batch, frames, decoded, track_ids)

    def _offer_previews(self, batch: _Batch, frames, decoded, track_ids) -> None:
        """The watched frames to the preview thread (frames of streams a reload removed are
        no longer in ``frames``: rows are found again by identity)."""
        rows, pictures = batch.preview_rows, batch.pictures
        if frames is not batch.frames:
            where = {id(frame): j for j, frame in enumerate(frames)}
            moved = {i: where[id(batch.frames[i])] for i in rows if id(batch.frames[i]) in where}
            rows = list(moved.values())
            if pictures is not None:
                pictures = {moved[i]: p for i, p in pictures.items() if i in moved}
        try:
            self.preview.offer(jobs_for(rows, frames, decoded, track_ids, self.config, pictures))
        except Exception:  # the view's pictures must never cost the batch
            logger.exception("preview: cannot hand over %d pictures", len(rows))

    # --- zones and lines (completer thread) ------------------------------------------------------

    def _zones_and_lines(
        self,
        frames: list[Frame],
        decoded: list[Detections],
        track_ids: list[np.ndarray | None] | None,
        stream_stats: dict[str, StreamStats],
    ) -> None:
        """The batch's zone and line events on ``event/<stream>/``; a stream whose zones do
        not fit its frames says so in a live note (its analytics are off, the rest go on)."""
        config = self.config
        try:
            if self._analytics_in is not config:  # reloaded
                self._analytics_in = config
                self._analytics.configure(config, self.stream_stats)  # set before config
            if track_ids is None or not self._analytics.active:
                return
            events, notes = self._analytics.process(frames, decoded, track_ids, stream_stats)
        except Exception as err:  # as for tracking: this batch's events, not the pipeline
            logger.exception("zone and line analytics failed for a batch of %d frames", len(frames))
            self._batch_failed(f"zone and line analytics failed: {err}")
            return
        for stream_id, reason in notes:
            self._live_note(stream_id, reason)
        if events:
            self.publisher.publish_encoded(events)

    def _record(
        self,
        frames: list[Frame],
        decoded: list[Detections],
        track_ids: list[np.ndarray | None] | None,
    ) -> None:
        """Hand the batch's event frames to the recorder (a queue put each, never a wait)."""
        try:
            self.recorder.seen(frames, decoded, track_ids, self._analytics.frame_events)
        except Exception:  # the recorder's trouble costs its snapshots, not the pipeline
            logger.exception("the recorder failed for a batch of %d frames", len(frames))
        self._analytics.frame_events = []

    # --- tracking (completer thread) -----------------------------------------------------------

    def _track(
        self, frames: list[Frame], decoded: list[Detections]
    ) -> list[np.ndarray | None] | None:
        """Track ids for the boxes of every tracked stream of the batch: one tracker call per
        set of parameters (one, unless streams override them), None where a stream is not
        tracked; None for the whole batch when none is."""
        if self._tracked_in is not self.config:  # started, or reloaded
            config = self._tracked_in = self.config
            self._tracked_params = {
                s.id: _tracker_params(s.tracking) for s in config.streams if s.tracking.enabled
            }
            self._forget_untracked()
        tracked = self._tracked_params
        groups: dict[TrackerParams, list[int]] = {}
        for index, frame in enumerate(frames):
            params = tracked.get(frame.stream_id)
            if params is None:
                continue
            groups.setdefault(params, []).append(index)
            last = self._segments.get(frame.stream_id)
            if last != frame.segment:
                self._segments[frame.stream_id] = frame.segment
                if last is not None:
                    self._reset_tracks(frame.stream_id, params)
        if not groups:
            return None
        track_ids: list[np.ndarray | None] = [None] * len(frames)
        for params, indices in groups.items():
            tracker = self._trackers.get(params)
            if tracker is None:
                tracker = self._trackers[params] = MultiStreamTracker(params)
            ids = tracker.update(
                [frames[i].stream_id for i in indices],
                [frames[i].pts_s for i in indices],
                [decoded[i].xyxy for i in indices],
                [decoded[i].scores for i in indices],
                [decoded[i].class_ids for i in indices],
            )
            base = self.track_id_base
            for index, stream_ids in zip(indices, ids):
                track_ids[index] = (
                    np.where(stream_ids > 0, stream_ids + base, stream_ids) if base else stream_ids
                )
        return track_ids

    def _forget_untracked(self) -> None:
        """After a reload: each tracker drops the rows of streams it no longer tracks (removed,
        tracking turned off, or parameters changed and so another tracker), which would
        otherwise stay for good. Their ids keep counting should they come back."""
        for stream_id in list(self._segments):
            params = self._tracked_params.get(stream_id)
            for tracker_params, tracker in self._trackers.items():
                if tracker_params != params:
                    tracker.reset(stream_id)
            if params is None:
                del self._segments[stream_id]

    def _reset_tracks(self, stream_id: str, params: TrackerParams) -> None:
        """A new segment (the file looped, the stream reconnected or restarted): its tracks
        start afresh (ids carry on counting), and a live stream says so in a ``live`` note
        (its zones and lines start afresh with them: occupancy 0, enter events again)."""
        tracker = self._trackers.get(params)
        if tracker is not None:
            tracker.reset(stream_id)
        stream = next((s for s in self.config.streams if s.id == stream_id), None)
        why = "the file started again" if stream and stream.is_file else "a new session"
        if self._live_note(stream_id, f"tracks reset: {why}"):
            logger.info("stream %s: tracks reset (%s)", stream_id, why)

    def _live_note(self, stream_id: str, reason: str) -> bool:
        """A ``live`` status with ``reason`` (and the stream's size and decoder), if the
        stream is live; whether it was published."""
        with self._status_lock:
            stats = self.stream_stats.get(stream_id)
            if stats is None or stats.state is not StreamState.LIVE:
                return False
            self.publisher.publish(
                topic("status", stream_id),
                status_message(
                    stream_id,
                    StreamState.LIVE.value,
                    reason=reason,
                    **self._live_detail.get(stream_id, {}),
                ),
            )
            return True


def _tracker_params(tracking: TrackingConfig) -> TrackerParams:
    return TrackerParams(
        high_score=tracking.high_score,
        low_score=tracking.low_score,
        new_track_score=tracking.new_track_score,
        confirm_hits=tracking.confirm_hits,
        max_lost_s=tracking.max_lost_s,
    )
