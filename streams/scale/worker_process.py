"""One worker process: a whole pipeline (capture, engine, publisher) over a share of the streams.

Started by :class:`streams.scale.supervisor.Supervisor` with the ``spawn`` method (CUDA does not
survive ``fork``). It publishes ``det`` and ``status`` through the supervisor's relay and
reports its snapshot to the supervisor, which merges them into the one ``stats`` message.
Signals are the supervisor's business: a worker ignores SIGINT/SIGTERM (a Ctrl-C reaches the
whole process group) and drains when ``stop`` is set, or exits when its parent is gone.
A worker on one GPU of several (``gpu``) sees only that GPU: ``CUDA_VISIBLE_DEVICES`` is set
before anything loads CUDA, so NVDEC, the preprocessing kernel and TensorRT all run on it as
``cuda:0`` (:func:`pin_gpu` says why). A reload arrives on ``commands`` (the full config and
this worker's new stream ids) and is applied with ``Pipeline.reload``; a worker that cannot
apply one exits, and the supervisor restarts it with its new shard.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import zmq

from streams.children import ignore_group_signals
from streams.config import Config
from streams.runtime.profiling import thread_cpu_seconds
from streams.runtime.shutdown import exit_process
from streams.scale.worker_logs import WorkerLogging

logger = logging.getLogger(__name__)

REPORT_INTERVAL_S = 0.5


class Reporter:
    """PUSHes this worker's messages to the supervisor; never blocks (drops if it is gone)."""

    def __init__(self, endpoint: str, index: int) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.SNDHWM, 100)
        self._socket.setsockopt(zmq.LINGER, 1000)
        self._socket.connect(endpoint)
        self.index = index

    def send(self, kind: str, **fields: Any) -> None:
        try:
            self._socket.send_json(
                {"worker": self.index, "pid": os.getpid(), "type": kind, **fields},
                flags=zmq.NOBLOCK,
            )
        except zmq.Again:
            pass

    def close(self) -> None:
        self._socket.close()
        self._context.term()


def shard_config(
    config: Config, stream_ids: list[str], bus_endpoint: str, gpu: int | None = None
) -> Config:
    """The worker's view: its streams only, publishing into the relay (CURVE is the relay's);
    pinned to one GPU (``gpu``), its engine on ``cuda:0``, the only GPU it sees."""
    wanted = set(stream_ids)
    engine = config.engine
    if gpu is not None:
        engine = replace(engine, device="cuda:0", devices=())
    return replace(
        config,
        streams=tuple(s for s in config.streams if s.id in wanted),
        engine=engine,
        publish=replace(config.publish, endpoint=bus_endpoint, curve=None),
        metrics=replace(config.metrics, port=0),
    )


def pin_gpu(gpu: int, environ: dict | Any = os.environ) -> str:
    """Make GPU ``gpu`` (as ``cuda:N`` numbers it in the supervisor) the only one this process
    sees, and return the ``CUDA_VISIBLE_DEVICES`` value set.

    Why the environment rather than passing ``cuda:N`` down: a library that initialises CUDA
    on its own (PyNvVideoCodec, the CUDA runtime's first call) makes a context on device 0,
    which would cost every worker of every GPU memory and time on GPU 0; a worker that sees
    one GPU cannot touch another, and an Xid on one GPU cannot wedge the others' workers.
    An inherited ``CUDA_VISIBLE_DEVICES`` (``2,3``) is honoured: ``cuda:1`` is then ``3``.
    Must run before CUDA is initialised in this process.
    """
    inherited = [v.strip() for v in environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    inherited = [v for v in inherited if v]
    if "CUDA_VISIBLE_DEVICES" in environ and gpu < len(inherited):
        value = inherited[gpu]
    else:
        value = str(gpu)
    environ["CUDA_VISIBLE_DEVICES"] = value
    return value


def worker_main(
    index: int,
    config: Config,
    stream_ids: list[str],
    bus_endpoint: str,
    report_endpoint: str,
    stop: Any,
    log_level: int,
    log_queue: Any,
    commands: Any,
    track_id_base: int = 0,
    gpu: int | None = None,
) -> None:
    """Process entry point (must be importable: ``spawn`` pickles a reference to it).

    ``gpu``: the one GPU this worker decodes and infers on (several GPUs), else None.

    SIGINT and SIGHUP (a Ctrl-C, a hangup: they reach the whole process group) are the
    supervisor's to handle (streams/children.py); SIGTERM
    (the supervisor's ``terminate()``, or an operator) drains this worker like ``stop``.
    """
    visible = pin_gpu(gpu) if gpu is not None else None  # first: before anything loads CUDA
    terminated = threading.Event()
    ignore_group_signals()  # Ctrl-C and a hangup reach the whole group: the supervisor's
    signal.signal(signal.SIGTERM, lambda *_: terminated.set())
    logs = WorkerLogging(log_queue, index, log_level)  # printed by the supervisor
    if visible is not None:
        logger.info("worker %d: GPU %d only (CUDA_VISIBLE_DEVICES=%s)", index, gpu, visible)
    reporter = Reporter(report_endpoint, index)
    try:
        code = _serve(
            index,
            config,
            stream_ids,
            bus_endpoint,
            reporter,
            lambda: stop.is_set() or terminated.is_set(),
            commands,
            track_id_base,
            gpu,
        )
    finally:
        reporter.close()
        logs.finish()
    raise SystemExit(exit_process(code))


def _serve(
    index: int,
    config: Config,
    stream_ids: list[str],
    bus_endpoint: str,
    reporter: Reporter,
    stopped: Callable[[], bool],
    commands: Any,
    track_id_base: int = 0,
    gpu: int | None = None,
) -> int:
    from streams.errors import USER_ERRORS
    from streams.runtime.wiring import build_runtime

    config = shard_config(config, stream_ids, bus_endpoint, gpu)
    try:
        runtime = build_runtime(
            config,
            publisher_connect=True,
            stats_sink=lambda snapshot: reporter.send(
                "snapshot", snapshot=snapshot, threads_cpu_s=thread_cpu_seconds()
            ),
        )
    except USER_ERRORS as err:
        reporter.send("error", reason=str(err))
        logger.error("%s", err)
        return 1
    except Exception as err:  # a bug: still tell the supervisor why this worker is gone
        reporter.send("error", reason=f"internal error: {err}")
        logger.exception("worker %d could not start", index)
        return 1
    pipeline = runtime.pipeline
    pipeline.track_id_base = track_id_base  # this launch's ids, never an earlier one's
    parent = multiprocessing.parent_process()
    clean = False
    try:
        device = getattr(runtime.engine, "device", None)  # TensorRT: the GPU's DeviceInfo
        reporter.send(
            "ready",
            backend=runtime.engine.backend,
            gpu_name=getattr(device, "name", None),
            gpu_pci=getattr(device, "pci", None) or None,  # for its Xid lines (kernel_log)
        )
        pipeline.start()
        while not stopped() and not pipeline.all_streams_finished():
            if parent is not None and not parent.is_alive():
                logger.warning("the supervisor is gone; stopping")
                break
            if pipeline.fatal is not None:
                logger.error("worker %d gives up: %s", index, pipeline.fatal)
                reporter.send("fatal", reason=pipeline.fatal)  # an Xid in it fails the GPU
                break
            if not _apply_reload(pipeline, commands, bus_endpoint, reporter, gpu):
                break
            time.sleep(0.1)
        clean = pipeline.fatal is None
    finally:
        pipeline.stop()
        if clean:  # "final" means: done on purpose, do not restart me
            reporter.send("final", snapshot=pipeline.snapshot())
        runtime.close()
    return 0 if clean else 3


def _apply_reload(
    pipeline: Any, commands: Any, bus_endpoint: str, reporter: Reporter, gpu: int | None = None
) -> bool:
    """Apply the newest reload waiting on ``commands``, if any; False if it failed (this
    worker then exits, and the supervisor starts it again with its new shard)."""
    command = None
    try:
        while commands.poll():  # only the newest shard matters
            command = commands.recv()
    except (EOFError, OSError):  # the supervisor is gone: the parent check ends the loop
        return True
    if command is None:
        return True
    config, stream_ids, generation = command
    try:
        plan = pipeline.reload(shard_config(config, stream_ids, bus_endpoint, gpu))
    except Exception as err:
        pipeline.fatal = f"cannot apply the reload: {err}"
        logger.exception("worker %d: cannot apply the reload", reporter.index)
        return False
    logger.info("worker %d reloaded: %s", reporter.index, plan.describe())
    reporter.send("reloaded", generation=generation)
    return True
