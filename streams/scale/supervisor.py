"""Several worker processes, one product: shards the streams, relays, merges, restarts.

Why: a Python process tops out near 1,500 GPU-decoded frames/s (every frame costs some
Python and there is one GIL; measured on an H100, docs/benchmarks.md), while one GPU decodes
and infers several times that. So the streams are split over ``workers.processes``
processes, each a whole :class:`~streams.runtime.pipeline.Pipeline` with its own engine. To
subscribers nothing changes: one endpoint (the :class:`~streams.scale.relay.Relay`), the same
``det``/``status`` messages, one merged ``stats`` message, one ``/metrics`` and one live table.

A worker that dies (a driver fault, the OOM killer) takes only its own streams down: they are
reported ``reconnecting`` with the reason, and the worker is restarted with back-off.

A reload (SIGHUP, or the HTTP API) reshards (``streams/scale/shards.py``) and sends each
worker whose share changed its new stream list down a pipe of its own; the worker applies it
with ``Pipeline.reload``, so only the streams added, removed or changed restart. An added
stream goes to a worker with room (fewer than ``capacity`` streams); when every one is full,
a worker process left with no streams starts again, or a new one starts. A worker started
later (a restart) is given its current share.

Several GPUs (``engine.device`` a list or ``all``): each worker is pinned to one GPU (its
NVDEC and its engine; ``worker_process.pin_gpu``), at least one per GPU, and the streams are
placed by load (``streams/scale/placement.py``). A GPU whose workers keep dying, or that
reports an Xid, is taken out: its workers are stopped for good and its streams move to the
other GPUs' workers, each with a ``status`` saying so.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from logging.handlers import QueueListener
from typing import Any

import zmq

from streams.bus.messages import stats_message, status_message, topic
from streams.bus.publisher import Publisher
from streams.children import start_resource_tracker
from streams.config import Config
from streams.errors import StreamsError
from streams.runtime.reload import ReloadPlan, ReloadRefused, plan_reload
from streams.runtime.runnable import wait_until_done
from streams.runtime.sources import resolve_sources
from streams.runtime.stats import PipelineStats, with_shard
from streams.scale.kernel_log import read_kmsg, xid_lines
from streams.scale.merge import COUNTERS, analytics_base, gpu_figures, merge_snapshots
from streams.scale.placement import GpuHealth, evacuate, place, stream_cost, worker_gpus
from streams.scale.placement import reshard as reshard_by_load
from streams.scale.relay import Relay
from streams.scale.shards import reshard, split_streams
from streams.scale.worker_logs import listen
from streams.scale.worker_process import worker_main
from streams.states import StreamState

logger = logging.getLogger(__name__)

RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 30.0
STOP_GRACE_S = 8.0  # a worker drains its pipeline in 4 s; then its engine and publisher close
RELOAD_APPLY_S = 15.0  # how long a reload waits for the workers to apply it (2 s per stream)
TRACK_ID_BLOCK = 1_000_000_000  # track ids of one worker launch (JSON-safe for 9 million launches)


def resolve_gpus(config: Config) -> list[int] | None:
    """The GPUs ``engine.device`` spreads the streams over (a list, or ``all``: every GPU CUDA
    sees), or None for one device as before. Raises StreamsError for a GPU that is not there.
    On a host where the backend is not TensorRT the list means nothing: None, logged."""
    devices = config.engine.devices
    if not devices:
        return None
    from engines.doctor import choose_backend

    backend, why = choose_backend(config.engine.backend)
    if backend != "tensorrt":
        logger.warning("engine.device lists GPUs, but the engine runs on the CPU: %s", why)
        return None
    from engines import cuda

    count = cuda.device_count()
    if devices == "all":
        if count == 0:
            raise StreamsError("engine.device: all, but CUDA sees no GPU")
        return list(range(count))
    for i, gpu in enumerate(devices):
        if gpu >= count:
            raise StreamsError(
                f"engine.device[{i}]: no GPU {gpu} (CUDA sees {count}: 0..{count - 1}; "
                "python -m streams doctor lists them)"
            )
    return list(devices)


def resolve_processes(config: Config, gpus: list[int] | None = None) -> tuple[int, str]:
    """How many worker processes ``workers.processes`` means here, and why; with ``gpus``
    (several GPUs), at least one per GPU."""
    count, why = _processes(config)
    if not gpus:
        return count, why
    if count < len(gpus):
        return len(gpus), f"{why}; at least one per GPU of engine.device ({len(gpus)})"
    even = math.ceil(count / len(gpus)) * len(gpus)
    if even != count:
        return even, f"{why}; as many on each of the {len(gpus)} GPUs"
    return count, why


def _processes(config: Config) -> tuple[int, str]:
    streams = len(config.streams)
    wanted = config.workers.processes
    if wanted != "auto":
        return max(1, min(int(wanted), streams)), "workers.processes in the configuration"
    from engines.doctor import choose_backend

    backend, _ = choose_backend(config.engine.backend)
    if backend != "tensorrt":
        return 1, "ONNX Runtime uses every CPU core from one process"
    per = config.workers.streams_per_process
    count = max(1, min(math.ceil(streams / per), (os.cpu_count() or 2) // 2))
    return count, f"{streams} streams, workers.streams_per_process {per}"


@dataclass
class _Worker:
    index: int
    stream_ids: list[str]
    gpu: int | None = None  # the GPU it is pinned to (several GPUs), else None
    gpu_name: str | None = None  # that GPU's model, once the worker has its engine
    gpu_pci: str | None = None  # and its PCI address (the kernel's Xid lines name it)
    launched_mono_s: float = 0.0  # when this process was started
    process: Any = None
    ready: bool = False
    finished: bool = False  # exited after reporting its final snapshot
    error: str | None = None
    restarts: int = 0
    restart_at_s: float | None = None
    backoff_s: float = RESTART_INITIAL_S
    snapshot: dict = field(default_factory=dict)
    reported_mono_s: float = 0.0  # when its last snapshot arrived
    threads_cpu_s: dict = field(default_factory=dict)  # CPU seconds per thread group so far
    commands: Any = None  # the sending end of this process's reload pipe
    applied: int = 0  # the last reload generation this process runs

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.exitcode is None


class Supervisor:
    """Runs ``config`` over ``processes`` worker processes; the CLI drives it like a Pipeline.

    ``gpus``: the GPUs to pin the workers to (``resolve_gpus``), at least one worker each;
    None: every worker on ``engine.device`` as before. Each entry is only a label to the
    supervisor (tests run CPU workers labelled GPU 0 and 1); the worker sees that GPU alone.
    """

    def __init__(
        self,
        config: Config,
        processes: int,
        log_level: int = logging.INFO,
        gpus: list[int] | None = None,
    ) -> None:
        self.config = config
        self._log_level = log_level
        start_resource_tracker()  # before any child or semaphore: SIGHUP-proof
        self._spawn = multiprocessing.get_context("spawn")
        self._stop = self._spawn.Event()
        self._stopping = threading.Event()  # no more restarts
        self._closing = threading.Event()  # no more reports to wait for
        self._lock = threading.Lock()
        self._shards_lock = threading.Lock()  # a reload's new shards vs a worker's (re)start
        self._generation = 0  # reloads applied so far
        self._launches = 0  # worker processes started so far (restarts included)
        self._tmp = tempfile.mkdtemp(prefix="streams-")
        self.stats = PipelineStats()
        self._relay = self._context = self._reports = self.publisher = None
        try:
            self._relay = Relay(config.publish, f"ipc://{self._tmp}/bus")
            self.endpoint = self._relay.endpoint
            self._context = zmq.Context()
            self._reports = self._context.socket(zmq.PULL)
            self._report_endpoint = f"ipc://{self._tmp}/reports"
            self._reports.bind(self._report_endpoint)
            self.publisher = Publisher(
                replace(config.publish, endpoint=self._relay.bus_endpoint, curve=None),
                self.stats,
                connect=True,
            )
        except Exception:
            self._release()
            raise
        self._log_queue = self._spawn.Queue()  # the workers' log records, printed here
        self._log_listener: QueueListener | None = listen(self._log_queue, self._on_log_record)
        self._workers = self._place(config, processes, gpus)
        self._health = (
            GpuHealth(gpus, config.workers.gpu_restart_budget, config.workers.gpu_restart_window_s)
            if gpus and len(gpus) > 1
            else None
        )
        # Streams a worker takes before an added one goes to another, or to a new worker:
        # workers.streams_per_process, or what each was started with if that is more.
        self.capacity = max(
            config.workers.streams_per_process, math.ceil(len(config.streams) / processes)
        )
        self._states = {s.id: StreamState.STARTING for s in config.streams}
        self.fatal: str | None = None  # a worker gives up by exiting; it is restarted
        # Counters of streams whose worker died, so merged counters never go backwards.
        self._counter_base: dict[str, dict[str, int]] = {}
        self._analytics_base: dict[str, dict] = {}  # and their zone and line counts
        self._started_mono_s = 0.0
        self._threads = [
            threading.Thread(target=self._receive_loop, name="reports", daemon=True),
            threading.Thread(target=self._watch_loop, name="supervise", daemon=True),
        ]
        self._stopped = False
        self._starting = True  # worker 0 is start()'s business until it is ready

    @staticmethod
    def _place(config: Config, processes: int, gpus: list[int] | None) -> list[_Worker]:
        """The workers and their first streams: contiguous shards on one device, by load over
        several GPUs (a worker left without streams waits, to take a failed GPU's)."""
        if not gpus:
            return [_Worker(i, ids) for i, ids in enumerate(split_streams(config, processes))]
        on = worker_gpus(gpus, processes)
        costs = {s.id: stream_cost(s) for s in config.streams}
        shards = place([s.id for s in config.streams], costs, on)
        return [
            _Worker(i, ids, gpu=gpu, finished=not ids)
            for i, (ids, gpu) in enumerate(zip(shards, on))
        ]

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, cancel: threading.Event | None = None) -> None:
        """Start worker 0 and wait until its engine is ready (it builds the engine cache the
        others then load), then the rest. Raises StreamsError if worker 0 cannot start."""
        self._started_mono_s = time.monotonic()
        for thread in self._threads:
            thread.start()
        first = self._workers[0]
        self._launch(first)
        while not first.ready:
            if cancel is not None and cancel.is_set():
                return
            if first.error or (first.process.exitcode is not None and not first.ready):
                deadline = time.monotonic() + 1.0  # its "error" report may still be in flight
                while first.error is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                raise StreamsError(
                    first.error
                    or f"worker 0 exited with code "
                    f"{first.process.exitcode} before its engine was ready"
                )
            time.sleep(0.05)
        self._starting = False
        for worker in self._workers[1:]:
            if worker.stream_ids:  # one without streams waits for a failed GPU's
                self._launch(worker)
        logger.info(
            "supervisor: %d worker processes, %s streams%s",
            len(self._workers),
            ", ".join(str(len(w.stream_ids)) for w in self._workers),
            ""
            if self._health is None
            else " on GPUs " + ", ".join(str(w.gpu) for w in self._workers),
        )

    def _launch(self, worker: _Worker) -> None:
        with self._shards_lock:
            self._launch_locked(worker)

    def _next_track_id_base(self) -> int:
        """Each worker launch's track ids start above every earlier launch's: a restarted
        worker (or a stream a reload moved to another worker) never reuses a stream's id."""
        base, self._launches = self._launches * TRACK_ID_BLOCK, self._launches + 1
        return base

    def _launch_locked(self, worker: _Worker) -> None:
        worker.ready = worker.finished = False
        worker.error = None
        if worker.commands is not None:
            worker.commands.close()
        receive, worker.commands = self._spawn.Pipe(duplex=False)
        worker.applied = self._generation  # it starts with the current shard
        worker.launched_mono_s = time.monotonic()
        worker.process = self._spawn.Process(
            target=worker_main,
            name=f"streams-worker-{worker.index}",
            daemon=True,
            args=(
                worker.index,
                self.config,
                worker.stream_ids,
                self._relay.bus_endpoint,
                self._report_endpoint,
                self._stop,
                self._log_level,
                self._log_queue,
                receive,
                self._next_track_id_base(),
                worker.gpu,
            ),
        )
        try:
            worker.process.start()
        finally:
            receive.close()  # the worker has its own copy now
        logger.info(
            "worker %d (pid %d%s): streams %s",
            worker.index,
            worker.process.pid,
            "" if worker.gpu is None else f", GPU {worker.gpu}",
            ", ".join(worker.stream_ids),
        )

    def worker_reports(self) -> list[tuple[dict, dict]]:
        """Each worker's latest (snapshot, CPU seconds per thread group), for benchmarks:
        a snapshot's counters and its ``uptime_s`` were taken together, so rates computed
        between two of them are exact whenever the reports arrived."""
        with self._lock:
            return [(dict(w.snapshot), dict(w.threads_cpu_s)) for w in self._workers]

    def wait_running(self, timeout_s: float = 120.0) -> bool:
        """Block until every worker has its engine and has reported a running pipeline
        (benchmarks time only what runs at full strength)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if all(w.ready and w.snapshot for w in self._workers if w.stream_ids):
                    return True
            time.sleep(0.05)
        return False

    def worker_gpus(self) -> list[int | None]:
        """The GPU each worker is pinned to (None on one device), in worker order."""
        return [w.gpu for w in self._workers]

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process is not None]

    def all_streams_finished(self) -> bool:
        return all(w.finished or w.error or self._retired(w) for w in self._workers)

    def _retired(self, worker: _Worker) -> bool:
        """Pinned to a GPU that failed: never started again."""
        return self._health is not None and worker.gpu in self._health.failed

    def stalled_s(self) -> float:
        """The longest any running worker has not moved: its pipeline's own figure, plus the
        time its next report is overdue (a frozen process reports nothing). A worker being
        restarted is the supervisor's business, not a wedge."""
        now_s = time.monotonic()
        every_s = self.config.publish.stats_interval_s  # how often a worker reports
        stalled = [0.0]
        with self._lock:
            for w in self._workers:
                running = w.process is not None and w.process.exitcode is None
                if running and w.ready and w.snapshot and not w.finished:
                    since_s = max(0.0, now_s - w.reported_mono_s - every_s)
                    stalled.append(w.snapshot.get("stalled_s", 0.0) + since_s)
        return max(stalled)

    def wait(self, duration_s: float | None = None, stop: threading.Event | None = None) -> str:
        return wait_until_done(self, duration_s, stop)

    def reload(self, config: Config) -> ReloadPlan:
        """Apply a new config's streams across the workers, as ``Pipeline.reload`` does in one
        process: each worker whose share changed gets it and restarts only the streams added,
        removed or changed; the other workers are not told. Raises ReloadRefused (the running
        config stays) as one process would, or if no worker is left to take a new stream."""
        plan = plan_reload(self.config, config)  # the same refusals as one process
        resolve_sources(config)  # a sample that cannot be fetched: refused here, not in a worker
        with self._shards_lock:
            if self._stopping.is_set():
                raise ReloadRefused("the run is stopping")
            current = [w.stream_ids for w in self._workers]
            if self._health is None:
                # A worker left with no streams is on its way out (or gone): not one to tell.
                serving = [
                    not (w.finished or w.error) and bool(w.stream_ids) for w in self._workers
                ]
                shards = reshard(current, serving, config, self.capacity)
            else:  # several GPUs: by load, onto the GPUs' own workers (idle ones included)
                serving = [not (w.finished or w.error or self._retired(w)) for w in self._workers]
                shards = reshard_by_load(
                    current,
                    serving,
                    [s.id for s in config.streams],
                    self._costs(config),
                    [w.gpu for w in self._workers],
                )
            if shards is None:
                raise ReloadRefused("no worker process is left to run the added streams")
            workers = self._workers + [
                _Worker(index, []) for index in range(len(self._workers), len(shards))
            ]
            starting = [
                w for w, shard in zip(workers, shards) if shard and not w.stream_ids
            ]  # an idle worker's slot, or a new one
            for worker in starting:
                self._wait_gone(worker)
            old = {s.id: s for s in self.config.streams}
            new = {s.id: s for s in config.streams}
            self._generation += 1
            told = []
            with self._lock:
                for sid in plan.removed:
                    self._states.pop(sid, None)
                    self._counter_base.pop(sid, None)
                    self._analytics_base.pop(sid, None)
                for sid in plan.added:
                    self._states[sid] = StreamState.STARTING
                self.config = config
            self._workers = workers  # replaced, never changed in place (other threads read it)
            for worker, shard in zip(workers, shards):
                before = [old[i] for i in worker.stream_ids]
                worker.stream_ids, removed = shard, [i for i in worker.stream_ids if i not in new]
                if before == [new[i] for i in shard]:
                    continue
                if worker in starting:
                    self._launch_locked(worker)  # logs its streams
                    continue
                logger.info("worker %d: streams %s", worker.index, ", ".join(shard) or "none")
                if self._tell(worker, config, shard):
                    told.append(worker)
                else:  # not running: it starts with its new shard; say what it no longer runs
                    for sid in removed:
                        self.publisher.publish(
                            topic("status", sid),
                            status_message(
                                sid, StreamState.ENDED.value, reason="removed from the config"
                            ),
                        )
        self._wait_applied(told, self._generation)
        return plan

    def _wait_gone(self, worker: _Worker) -> None:
        """Before a worker's slot starts a new process: its old one (told it has no streams
        left) has exited and its last report is in, so nothing of it lands on the new one."""
        deadline = time.monotonic() + STOP_GRACE_S
        while worker.process is not None and time.monotonic() < deadline:
            if not worker.alive and (worker.finished or worker.error):
                return
            time.sleep(0.02)
        if worker.alive:
            logger.warning(
                "worker %d did not leave in %.0f s; killing it", worker.index, STOP_GRACE_S
            )
            worker.process.kill()
            worker.process.join(2.0)

    def _tell(self, worker: _Worker, config: Config, shard: list[str]) -> bool:
        """Send a running worker its new shard; False if it is not running to take it."""
        if not worker.alive or worker.finished:
            return False
        try:
            worker.commands.send((config, shard, self._generation))
        except OSError:  # it died just now: it restarts with the new shard
            return False
        return True

    def _wait_applied(self, workers: list[_Worker], generation: int) -> None:
        """Until each worker has applied ``generation`` (its streams restarted), died, or
        ``RELOAD_APPLY_S`` passed. One still starting applies it once its engine is ready."""
        deadline = time.monotonic() + RELOAD_APPLY_S
        while time.monotonic() < deadline:
            if all(w.applied >= generation or not w.alive or not w.ready for w in workers):
                return
            time.sleep(0.05)
        late = [str(w.index) for w in workers if w.alive and w.applied < generation]
        logger.warning("worker %s has not applied the reload yet", ", ".join(late))

    def stop(self) -> None:
        """Workers drain and report their last snapshot; the merged ``stats`` goes out last."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        self._stop.set()
        deadline = time.monotonic() + STOP_GRACE_S
        for worker in self._workers:
            if worker.process is not None:
                worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            if worker.process is not None and worker.process.is_alive():
                logger.warning(
                    "worker %d did not stop in %.0f s; killing it", worker.index, STOP_GRACE_S
                )
                worker.process.kill()
                worker.process.join(2.0)
        time.sleep(0.2)  # the last reports are in flight on the PULL socket
        self._stop_log_listener()  # every worker has exited: their last records print now,
        self._publish_stats()  # before the caller's summary, not into it

    def close(self) -> None:
        """Stop (if not yet), then close the publisher, the relay and the report socket."""
        self.stop()
        self._closing.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(2.0)
        for worker in self._workers:
            if worker.commands is not None:
                worker.commands.close()
        self._stop_log_listener()
        self._release()

    def _stop_log_listener(self) -> None:
        """Print the workers' queued records and stop listening (once their processes ended)."""
        listener, self._log_listener = self._log_listener, None
        if listener is not None:
            listener.stop()  # handles every record queued before its sentinel

    def _release(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
            time.sleep(0.1)  # the relay forwards what the publisher just flushed
        if self._relay is not None:
            self._relay.close()
        if self._reports is not None:
            self._reports.close(0)
        if self._context is not None:
            self._context.term()
        shutil.rmtree(self._tmp, ignore_errors=True)

    # --- reports and supervision -----------------------------------------------------------

    def _receive_loop(self) -> None:
        interval_s = self.config.publish.stats_interval_s
        next_stats_s = time.monotonic() + interval_s
        poller = zmq.Poller()
        poller.register(self._reports, zmq.POLLIN)
        while not self._closing.is_set() or poller.poll(0):
            try:
                if poller.poll(100):
                    self._on_report(self._reports.recv_json())
                if not self._stopping.is_set() and time.monotonic() >= next_stats_s:
                    next_stats_s += interval_s
                    self._publish_stats()
            except Exception:  # one bad report must not end the supervision
                logger.exception("supervisor: cannot handle a worker report")

    def _on_report(self, report: dict) -> None:
        worker = self._workers[report["worker"]]
        if worker.process is not None and report.get("pid") not in (None, worker.process.pid):
            return  # from an earlier process of this slot, reported after it was replaced
        kind = report["type"]
        if self._retired(worker):
            return  # its streams run elsewhere now; late reports would count them twice
        if kind in ("error", "fatal"):
            self._check_fault(worker, report["reason"])
        if kind == "error" and not self._retired(worker):
            self._check_start_failure(worker, report["reason"])
        if self._retired(worker):
            return  # that error was its GPU's fault: its streams have moved
        with self._lock:
            if kind == "ready":
                worker.ready = True
                worker.backoff_s = RESTART_INITIAL_S
                worker.gpu_name = report.get("gpu_name")
                worker.gpu_pci = report.get("gpu_pci")
            elif kind == "reloaded":
                worker.applied = max(worker.applied, report["generation"])
            elif kind == "error":
                worker.error = report["reason"]
                for sid in worker.stream_ids:
                    self._states[sid] = StreamState.FAILED
                    self.publisher.publish(
                        topic("status", sid),
                        status_message(
                            sid,
                            StreamState.FAILED.value,
                            reason=f"worker process {worker.index}: {worker.error}",
                        ),
                    )
            elif kind in ("snapshot", "final"):
                worker.snapshot = report["snapshot"]
                worker.reported_mono_s = time.monotonic()
                worker.threads_cpu_s = report.get("threads_cpu_s", {})
                for stream in worker.snapshot["streams"]:
                    if stream["stream"] in self._states:  # not one a reload removed
                        self._states[stream["stream"]] = StreamState(stream["state"])
                if kind == "final":
                    worker.finished = True

    def _watch_loop(self) -> None:
        """Restart a worker that died without being asked to."""
        while not self._stopping.wait(0.25):
            for worker in self._workers:
                try:
                    self._watch(worker)
                except Exception:  # a failed spawn (EMFILE...): try again on the next round
                    logger.exception("supervisor: cannot restart worker %d", worker.index)

    def _watch(self, worker: _Worker) -> None:
        if self._retired(worker):
            return
        process = worker.process
        if process is None or process.exitcode is None or worker.finished:
            return
        if worker.error:  # it could not start (bad model, no GPU): no point retrying
            return
        if worker.index == 0 and self._starting:
            return  # start() reports worker 0's failure to start itself
        if not worker.stream_ids:  # a reload removed all its streams: nothing to restart
            worker.finished = True
            return
        if worker.restart_at_s is None:
            if self._health is not None and (
                self._kernel_fault(worker) or self._gpu_died(worker, process.exitcode)
            ):
                return
            self._on_worker_death(worker, process.exitcode)
        elif time.monotonic() >= worker.restart_at_s:
            worker.restart_at_s = None
            worker.restarts += 1
            self._launch(worker)

    # --- a GPU that fails ------------------------------------------------------------------

    def _gpu_died(self, worker: _Worker, exitcode: int) -> bool:
        """Count this death against the worker's GPU; True if that failed the GPU (its
        streams have moved, nothing to restart)."""
        with self._shards_lock:
            reason = self._health.death(worker.gpu, time.monotonic())
            if reason is None:
                return False
            self._move_off(
                worker.gpu, f"{reason}, the last: worker process {worker.index} code {exitcode}"
            )
        return True

    def _kernel_fault(self, worker: _Worker) -> bool:
        """The kernel log's Xid lines for the dead worker's GPU since it started: True if one
        failed the GPU (its streams have moved)."""
        if not worker.gpu_pci:
            return False
        lines = xid_lines(read_kmsg(), worker.gpu_pci, worker.launched_mono_s - 1.0)
        for line in lines:
            self._check_fault(worker, line)
            if self._retired(worker):
                return True
        return False

    def _check_fault(self, worker: _Worker, text: str) -> None:
        """A worker's error or log line that names a GPU fault (Xid, ...) fails its GPU."""
        if self._health is None or worker.gpu is None or self._stopping.is_set():
            return
        with self._shards_lock:
            reason = self._health.fault(worker.gpu, text, worker.index)
            if reason is not None:
                self._move_off(worker.gpu, reason)

    def _check_start_failure(self, worker: _Worker, reason: str) -> None:
        """A worker that cannot start where a worker on another GPU did (same config, same
        model): its GPU is what differs, so that GPU fails (out of memory, CUDA cannot use
        it) rather than its streams."""
        if self._health is None or worker.gpu is None or self._stopping.is_set():
            return
        with self._lock:
            elsewhere = any(w.ready for w in self._workers if w.gpu != worker.gpu)
        if not elsewhere:
            return  # the config or model is at fault: every GPU would fail alike
        with self._shards_lock:
            failed = self._health.fail(
                worker.gpu,
                f"GPU {worker.gpu} failed: worker process {worker.index} could not start "
                f"({reason})",
            )
            if failed is not None:
                self._move_off(worker.gpu, failed)

    def _on_log_record(self, record: logging.LogRecord) -> None:
        """The workers' ERROR records, read for GPU faults (the driver's Xid in a CUDA error)."""
        index = getattr(record, "worker", None)
        if self._health is None or record.levelno < logging.ERROR or index is None:
            return
        if 0 <= index < len(self._workers):
            self._check_fault(self._workers[index], record.getMessage())

    def _costs(self, config: Config) -> dict[str, float]:
        """Each stream's cost (placement.stream_cost), from the workers' latest figures."""
        with self._lock:
            rows = {r["stream"]: r for w in self._workers for r in w.snapshot.get("streams", [])}
        return {s.id: stream_cost(s, rows.get(s.id)) for s in config.streams}

    def _move_off(self, gpu: int, reason: str) -> None:
        """GPU ``gpu`` failed (``self._health`` says so; called under the shards lock): stop its
        workers for good and move their streams to the other GPUs' workers by load."""
        leaving = [w for w in self._workers if w.gpu == gpu]
        logger.error("%s; moving its streams to the other GPUs", reason)
        for worker in leaving:
            if worker.alive:
                worker.process.kill()  # a broken GPU: no drain to wait for
                worker.process.join(2.0)
        costs = self._costs(self.config)
        with self._lock:  # their counters carry on wherever the streams go
            for worker in leaving:
                self._carry(worker)
                worker.restart_at_s = None
        usable = [not w.error and not self._retired(w) for w in self._workers]
        result = evacuate(
            [w.stream_ids for w in self._workers],
            [w.gpu for w in self._workers],
            set(self._health.failed),
            costs,
            usable,
        )
        if result is None:
            for worker in leaving:
                for sid in worker.stream_ids:
                    self._set_status(
                        sid, StreamState.FAILED, f"{reason}; no worker on another GPU can run it"
                    )
            return
        shards, moves = result
        order = {s.id: i for i, s in enumerate(self.config.streams)}
        shards = [sorted(shard, key=order.__getitem__) for shard in shards]
        self._generation += 1
        for worker, shard in zip(self._workers, shards):
            if shard == worker.stream_ids:
                continue
            worker.stream_ids = shard
            if worker.gpu == gpu:
                continue
            logger.info(
                "worker %d (GPU %d): streams %s", worker.index, worker.gpu, ", ".join(shard)
            )
            if self._tell(worker, self.config, shard):
                continue
            if worker.restart_at_s is None and not worker.alive:  # waiting, or done: start it
                self._launch_locked(worker)
        for move in moves:
            self._set_status(
                move.stream,
                StreamState.RECONNECTING,
                f"{reason}; moving to GPU {move.to_gpu} (worker process {move.to_worker})",
            )

    def _set_status(self, sid: str, state: StreamState, reason: str) -> None:
        """A stream's state as the supervisor decided it; ``reconnecting`` as attempt 1 (the
        stream starts afresh on its new worker)."""
        with self._lock:
            self._states[sid] = state
        attempt = 1 if state is StreamState.RECONNECTING else None
        self.publisher.publish(
            topic("status", sid), status_message(sid, state.value, reason=reason, attempt=attempt)
        )

    def _carry(self, worker: _Worker) -> None:
        """Keep a gone worker's counters (under ``self._lock``): merged ones never go back."""
        for row in worker.snapshot.get("streams", []):
            base = self._counter_base.setdefault(row["stream"], dict.fromkeys(COUNTERS, 0))
            for key in COUNTERS:
                base[key] += row[key]
            if "zones" in row or "lines" in row:
                sid = row["stream"]
                self._analytics_base[sid] = analytics_base(self._analytics_base.get(sid), row)
        worker.snapshot = {}

    def _on_worker_death(self, worker: _Worker, exitcode: int) -> None:
        delay_s = worker.backoff_s
        worker.backoff_s = min(worker.backoff_s * 2, RESTART_MAX_S)
        worker.restart_at_s = time.monotonic() + delay_s
        reason = (
            f"worker process {worker.index} exited with code {exitcode}; restarting it "
            f"in {delay_s:.1f} s"
        )
        logger.error("%s (streams %s)", reason, ", ".join(worker.stream_ids))
        with self._lock:  # its counters carry on from here; its rates are gone with it
            self._carry(worker)
        tracked = {s.id for s in self.config.streams if s.tracking.enabled}
        for sid in worker.stream_ids:
            self._states[sid] = StreamState.RECONNECTING
            note = "; its tracks start afresh (new track ids)" if sid in tracked else ""
            self.publisher.publish(
                topic("status", sid),
                status_message(
                    sid,
                    StreamState.RECONNECTING.value,
                    reason=reason + note,
                    attempt=worker.restarts + 1,
                ),
            )

    # --- the merged view -----------------------------------------------------------------------

    def snapshot(self) -> dict:
        """Every worker's streams (config order) and pipeline figures, merged."""
        with self._lock:
            snapshots = [w.snapshot for w in self._workers]
            states = dict(self._states)
            bases = {sid: dict(base) for sid, base in self._counter_base.items()}
            analytics_bases = dict(self._analytics_base)
            gpus = None
            if self._health is not None:
                gpus = gpu_figures(
                    self._health.gpus,
                    [
                        {"gpu": w.gpu, "name": w.gpu_name, "streams": list(w.stream_ids)}
                        for w in self._workers
                    ],
                    snapshots,
                    dict(self._health.failed),
                )
        merged = merge_snapshots(
            [s.id for s in self.config.streams],
            snapshots,
            states,
            bases,
            {"published": self.stats.published, "publish_dropped": self.stats.publish_dropped},
            sum(w.restarts for w in self._workers),
            len(self._workers),
            time.monotonic() - self._started_mono_s,
            analytics_bases,
        )
        merged["pipeline"] = with_shard(merged["pipeline"], self.config)
        if gpus is not None:
            merged["pipeline"]["gpus"] = gpus
        return merged

    def _publish_stats(self) -> None:
        snap = self.snapshot()
        self.publisher.publish(
            topic("stats"), stats_message(snap["streams"], snap["pipeline"], snap["uptime_s"])
        )
