"""``python -m streams bench``: the bare engine and the whole pipeline, side by side.

Both measurements use the same engine object on the same machine in one run. The pipeline
reads the sample videos unpaced (``pace: none``: as fast as it takes frames, nothing dropped)
with one stream per batch slot, so it forms full batches like the bare engine loop does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from processors.labels import load_labels
from processors.letterbox import preprocess_into
from streams.runtime.wiring import open_engine, resolve_sources
from streams.config import Config, load_config
from streams.bus.messages import LATENCY_KEYS
from streams.runtime.pipeline import Pipeline
from streams.runtime.preprocess import device_input_of
from streams.runtime.profiling import ThreadCpu
from streams.bus.publisher import Publisher
from streams.runtime.stats import PipelineStats

logger = logging.getLogger(__name__)

WARMUP_S = 3.0
NVDEC_CEILING_TRIALS = ((16, 1), (32, 4), (100, 5))  # (sessions, processes)


def bench_config(config: Config, streams: int, paced: bool = False,
                 clip: str | None = None) -> Config:
    """``streams`` looping copies of the configured streams, publishing on a free port.

    Unpaced (``pace: none``) measures throughput; paced (``realtime``, like cameras) measures
    latency and drops when the cameras offer more frames than the engine can take.
    """
    copies = tuple(
        replace(config.streams[i % len(config.streams)],
                id=f"{'cam' if clip else config.streams[i % len(config.streams)].id}-{i}",
                url=clip or config.streams[i % len(config.streams)].url,
                pace="realtime" if paced else "none", loop=True, fps=None)
        for i in range(streams))
    return replace(config, streams=copies,
                   publish=replace(config.publish, endpoint="tcp://127.0.0.1:*"))


def first_frames(sources: list[str], count: int) -> list[np.ndarray]:
    """One decoded frame from each source, cycling, ``count`` in all."""
    frames = []
    for source in sources:
        cap = cv2.VideoCapture(source)
        ok, image = cap.read()
        cap.release()
        if ok:
            frames.append(image)
    if not frames:
        raise RuntimeError(f"no frame could be read from {sources}")
    return [frames[i % len(frames)] for i in range(count)]


def bench_engine_loop(engine, images: list[np.ndarray], duration_s: float) -> dict:
    """The bare engine on a real preprocessed batch, through bench_engine's loops: images per
    second with every slot in flight, and the batch time one batch at a time."""
    from streams.bench.engine import measure_latency, measure_throughput

    batch = len(images)
    slots = [engine.acquire() for _ in range(engine.num_slots)]
    for slot in slots:  # the loops below reuse these slots and their filled inputs
        for i, image in enumerate(images):
            preprocess_into(slot.input[i], image)
    for slot in slots:
        engine.release(slot)
    probe_ms = statistics.median(measure_latency(engine, batch, iters=5, warmup=2))
    iters = max(10, int(duration_s * 1000 / probe_ms))
    img_per_s = measure_throughput(engine, batch, iters, warmup=max(2, iters // 10))
    batch_ms = statistics.median(measure_latency(engine, batch, max(3, iters // 4), warmup=1))
    return {"batch": batch, "img_per_s": img_per_s, "batch_time_ms": batch_ms}


class GpuSampler:
    """Mean GPU and NVDEC utilisation from ``nvidia-smi`` while a measurement runs."""

    def __init__(self) -> None:
        self._process = None
        if shutil.which("nvidia-smi"):
            self._process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,utilization.decoder",
                 "--format=csv,noheader,nounits", "-lms", "500"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def stop(self) -> dict:
        if self._process is None:
            return {}
        self._process.terminate()
        out, _ = self._process.communicate(timeout=5)
        rows = [[float(v) for v in line.split(",")] for line in out.splitlines()
                if line.count(",") == 1 and "N/A" not in line]
        if not rows:
            return {}
        return {"gpu_util_pct": round(float(np.mean([r[0] for r in rows])), 1),
                "nvdec_util_pct": round(float(np.mean([r[1] for r in rows])), 1)}


def bench_pipeline(config: Config, engine, labels, model_name: str, duration_s: float,
                   warmup_s: float = WARMUP_S) -> dict:
    """Run the whole pipeline on looping files; frames published per second."""
    stats = PipelineStats()
    publisher = Publisher(config.publish, stats)
    pipeline = Pipeline(config, engine, publisher, resolve_sources(config), labels, model_name,
                        stats)
    try:
        pipeline.start()
        time.sleep(warmup_s)
        processed_before = sum(s.processed for s in pipeline.stream_stats.values())
        decoded_before = sum(s.decoded for s in pipeline.stream_stats.values())
        dropped_before = sum(s.dropped for s in pipeline.stream_stats.values())
        for s in pipeline.stream_stats.values():
            s.recorded_latency_ms = []  # every frame from here on, for exact percentiles
        batches_before, frames_before = stats.batches, stats.batch_frames
        start = time.perf_counter()
        sampler, thread_cpu = GpuSampler(), ThreadCpu()
        time.sleep(duration_s)
        elapsed = time.perf_counter() - start
        utilisation = sampler.stop()
        cpu = thread_cpu.stop()
        processed = sum(s.processed for s in pipeline.stream_stats.values()) - processed_before
        decoded = sum(s.decoded for s in pipeline.stream_stats.values()) - decoded_before
        dropped = sum(s.dropped for s in pipeline.stream_stats.values()) - dropped_before
        latencies = np.concatenate([np.asarray(s.recorded_latency_ms, dtype=np.float64)
                                    for s in pipeline.stream_stats.values()])
        batches = stats.batches - batches_before
        mean_batch = (stats.batch_frames - frames_before) / batches if batches else 0.0
    finally:
        pipeline.stop()
        publisher.close()
    p50, p99 = (np.percentile(latencies, [50, 99]) if latencies.size else (np.nan, np.nan))
    return {"streams": len(config.streams), "fps": processed / elapsed,
            "offered_fps": decoded / elapsed, "dropped": dropped, "mean_batch": mean_batch,
            "latency_p50_ms": float(p50), "latency_p99_ms": float(p99),
            "published": stats.published, "publish_dropped": stats.publish_dropped,
            **utilisation, **cpu}


def cpu_line(row: dict, top: int = 5) -> str:
    """``CPU 312% (capture-* 180%, completer 61%, ...)``: where the process spends its cores."""
    groups = list(row.get("threads_cpu_pct", {}).items())[:top]
    inner = ", ".join(f"{name} {pct:.0f}%" for name, pct in groups)
    return f"CPU {row.get('process_cpu_pct', float('nan')):.0f}% ({inner})"


class DetRecorder:
    """A real subscriber on the relay: counts ``det`` messages and keeps their latencies
    while recording (the frame-to-publish latency each message carries)."""

    def __init__(self, endpoint: str) -> None:
        import zmq

        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, 1_000_000)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"det/")
        self._socket.connect(endpoint)
        self.recording = False
        self.breakdowns: list[dict[str, float]] = []  # each message's latency_ms
        self.missing = 0  # seq gaps seen while recording: frames that never got a result
        self._last_seq: dict[str, int] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="det-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            if not self._socket.poll(100):
                continue
            _topic, payload = self._socket.recv_multipart()
            message = json.loads(payload)
            stream, seq = message["stream"], message["seq"]
            previous = self._last_seq.get(stream)
            self._last_seq[stream] = seq
            if self.recording:
                self.breakdowns.append(message["latency_ms"])
                if previous is not None and seq > previous + 1:
                    self.missing += seq - previous - 1  # frames dropped on the way

    def close(self) -> None:
        self._done.set()
        self._thread.join(2.0)
        self._socket.close(0)
        self._context.term()


def _process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_supervised(config: Config, processes: int, duration_s: float,
                     warmup_s: float = WARMUP_S) -> dict:
    """The pipeline over ``processes`` worker processes, measured at a real subscriber."""
    from streams.scale.supervisor import Supervisor

    config = replace(config, publish=replace(config.publish, stats_interval_s=0.5))
    supervisor = Supervisor(config, processes, logging.getLogger().level)
    recorder = DetRecorder(supervisor.endpoint)
    try:
        supervisor.start()
        if not supervisor.wait_running():
            raise RuntimeError(f"not every one of {processes} worker processes started")
        time.sleep(warmup_s)
        before = supervisor.worker_reports()
        pids = supervisor.worker_pids()
        cpu_before = {pid: _process_cpu_s(pid) for pid in pids}
        recorder.recording = True
        start = time.perf_counter()
        sampler = GpuSampler()
        time.sleep(duration_s)
        recorder.recording = False
        elapsed = time.perf_counter() - start
        utilisation = sampler.stop()
        cpu = [round(100 * (_process_cpu_s(pid) - cpu_before[pid]) / elapsed, 1) for pid in pids]
        time.sleep(config.publish.stats_interval_s + 0.1)  # a report from after the window
        after = supervisor.worker_reports()
        merged = supervisor.snapshot()
    finally:
        supervisor.stop()
        recorder.close()
        supervisor.close()

    rates = worker_rates(before, after)
    latencies = np.asarray([b["total"] for b in recorder.breakdowns], dtype=np.float64)
    p50, p99 = (np.percentile(latencies, [50, 99]) if latencies.size else (np.nan, np.nan))
    parts = {key: [round(float(v), 2) for v in np.percentile(
        [b[key] for b in recorder.breakdowns], [50, 99])] for key in LATENCY_KEYS} \
        if recorder.breakdowns else {}
    return {"streams": len(config.streams), "processes": processes,
            "fps": latencies.size / elapsed,
            "offered_fps": (latencies.size + recorder.missing) / elapsed,
            "decoded_fps": rates["decoded_per_s"],
            "dropped": recorder.missing,  # exact: seq gaps at the subscriber
            "dropped_at_board": round(rates["dropped_per_s"] * elapsed),
            "mean_batch": rates["mean_batch"], "batches": round(rates["batches_per_s"] * elapsed),
            "latency_p50_ms": float(p50), "latency_p99_ms": float(p99),
            "published": merged["pipeline"]["published"],
            "publish_dropped": merged["pipeline"]["publish_dropped"],
            "restarts": merged["pipeline"]["restarts"], "latency_parts_p50_p99_ms": parts,
            **utilisation, "process_cpu_pct": round(sum(cpu), 1),
            "workers_cpu_pct": cpu, "threads_cpu_pct": rates["threads_cpu_pct"]}


def worker_rates(before: list[tuple[dict, dict]], after: list[tuple[dict, dict]]) -> dict:
    """Per-second rates between two sets of worker reports.

    Each worker's counters are divided by the time between its own two reports (its
    ``uptime_s``), not by the benchmark's window: reports arrive every half second, so the
    window's edges and the reports' never line up.
    """
    totals = {"decoded_per_s": 0.0, "dropped_per_s": 0.0, "batches_per_s": 0.0}
    frames_per_s = 0.0
    threads: dict[str, float] = {}
    for (first, first_cpu), (last, last_cpu) in zip(before, after):
        if not first or not last or last["uptime_s"] <= first["uptime_s"]:
            continue
        span_s = last["uptime_s"] - first["uptime_s"]
        for key in ("decoded", "dropped"):
            grown = (sum(s[key] for s in last["streams"])
                     - sum(s[key] for s in first["streams"]))
            totals[f"{key}_per_s"] += grown / span_s
        a, b = first["pipeline"], last["pipeline"]
        totals["batches_per_s"] += (b["batches"] - a["batches"]) / span_s
        frames_per_s += (b["mean_batch"] * b["batches"] - a["mean_batch"] * a["batches"]) / span_s
        for group, seconds in last_cpu.items():
            threads[group] = threads.get(group, 0.0) + (seconds - first_cpu.get(group, 0.0)) / span_s
    totals["mean_batch"] = frames_per_s / totals["batches_per_s"] if totals["batches_per_s"] else 0.0
    totals["threads_cpu_pct"] = {group: round(100 * value, 1) for group, value in
                                 sorted(threads.items(), key=lambda item: -item[1])}
    return totals


def processes_for(config: Config, streams: int, wanted: str) -> int:
    """``--processes``: a number, or ``auto`` (one per workers.streams_per_process streams)."""
    if wanted == "auto":
        return max(1, -(-streams // config.workers.streams_per_process))
    return max(1, min(int(wanted), streams))


def measure_pipeline(config: Config, engine, labels, model_name: str, duration_s: float,
                     processes: int, warmup_s: float = WARMUP_S) -> dict:
    if processes > 1:
        return bench_supervised(config, processes, duration_s, warmup_s)
    return {**bench_pipeline(config, engine, labels, model_name, duration_s, warmup_s),
            "processes": 1}


GPU_SWEEP = "1,8,32,64,100,128"


def apply_gpu_defaults(args: argparse.Namespace) -> None:
    """``bench --gpu``: the 1080p30 camera curve on TensorRT + NVDEC, ready to run.

    Sweeps 1..128 streams with worker processes (``auto``) over a 1080p30 H.264 clip made
    once from the bikes sample (``clip1080.mp4`` in the asset cache) unless ``--clip`` says
    otherwise. Refuses clearly where there is no TensorRT or GPU.
    """
    from engines.doctor import choose_backend
    from streams.errors import StreamsError

    backend, reason = choose_backend("auto")
    if backend != "tensorrt":
        raise StreamsError(f"bench --gpu needs TensorRT and an NVIDIA GPU: {reason} "
                           "(python -m streams doctor says more)")
    args.sweep = args.sweep or GPU_SWEEP
    args.processes = args.processes or "auto"
    if not args.clip:
        from streams.assets import default_cache_dir
        from streams.bench.decode import make_clip

        clip = default_cache_dir() / "videos" / "clip1080.mp4"
        if not clip.is_file():
            clip.parent.mkdir(parents=True, exist_ok=True)
            print(f"bench --gpu: encoding the 1080p30 benchmark clip {clip} (once)",
                  file=sys.stderr)
            make_clip(clip)
        args.clip = str(clip)


def run_bench(args: argparse.Namespace) -> int:
    if getattr(args, "gpu", False):
        apply_gpu_defaults(args)
    args.processes = args.processes or "1"
    if args.sweep:
        return run_sweep(args)
    config = load_config(args.config)
    streams = args.streams or config.engine.max_batch
    config = bench_config(config, streams, paced=args.paced, clip=args.clip)
    labels = load_labels(config.model.labels)
    engine, model_name = open_engine(config)
    try:
        batch = min(engine.max_batch, streams)
        images = first_frames(sorted(set(resolve_sources(config).values())), batch)
        print(f"bench: {engine.backend}, model {model_name}, batch {batch}, {streams} streams "
              f"{'paced like cameras' if args.paced else 'unpaced'}, {args.duration:g} s each",
              file=sys.stderr)
        engine_result = bench_engine_loop(engine, images, args.duration)
        pipeline_result = measure_pipeline(config, engine, labels, model_name, args.duration,
                                           processes_for(config, streams, args.processes),
                                           args.warmup)
    finally:
        engine.close()
    ratio = pipeline_result["fps"] / engine_result["img_per_s"]
    result = {"backend": engine.backend, "model": model_name, "paced": args.paced,
              "engine": engine_result, "pipeline": pipeline_result, "pipeline_vs_engine": ratio}
    print(f"bare engine : {engine_result['img_per_s']:8.1f} img/s at batch {batch} "
          f"(batch time {engine_result['batch_time_ms']:.1f} ms, one at a time)")
    print(f"pipeline    : {pipeline_result['fps']:8.1f} frames/s over {streams} streams, "
          f"mean batch {pipeline_result['mean_batch']:.2f}, latency p50 "
          f"{pipeline_result['latency_p50_ms']:.1f} ms p99 {pipeline_result['latency_p99_ms']:.1f} ms")
    print(f"ratio       : {ratio:.1%} of the bare engine")
    print(f"threads     : {cpu_line(pipeline_result)}")
    if args.paced:
        offered = pipeline_result["offered_fps"]
        bound_ms = config.batch.max_wait_ms + 2 * engine_result["batch_time_ms"]
        result["overload"] = offered / engine_result["img_per_s"]
        result["latency_bound_ms"] = bound_ms
        print(f"overload    : cameras offer {offered:.1f} frames/s = "
              f"{result['overload']:.2f}x the engine; {pipeline_result['dropped']} dropped")
        if result["overload"] < 1.0:
            print("bound       : not overloaded (the engine keeps up), no latency bound to check")
        else:
            print(f"bound       : p99 {pipeline_result['latency_p99_ms']:.1f} ms vs max_wait_ms + 2 "
                  f"batch times = {bound_ms:.1f} ms: "
                  f"{'within' if pipeline_result['latency_p99_ms'] <= bound_ms else 'EXCEEDED'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    """The GPU curve: N camera streams from one clip, paced and unpaced, against the two
    ceilings measured in the same run (NVDEC decode-only and the bare engine)."""
    config = load_config(args.config)
    if getattr(args, "gpu", False):
        config = replace(config, engine=replace(config.engine, backend="tensorrt"))
    counts = [int(n) for n in args.sweep.split(",")]
    if not args.clip:
        raise SystemExit("--sweep needs --clip (e.g. a 1080p30 H.264 clip from "
                         "python -m streams.bench.decode --make-clip clip.mp4)")
    labels = load_labels(config.model.labels)
    engine, model_name = open_engine(config)
    rows, result = [], {"backend": engine.backend, "model": model_name, "clip": args.clip}
    try:
        images = first_frames([args.clip], engine.max_batch)
        result["engine"] = bench_engine_loop(engine, images, min(args.duration, 10.0))
        print(f"ceiling, bare engine : {result['engine']['img_per_s']:8.0f} img/s at batch "
              f"{engine.max_batch}", flush=True)
        device_input = device_input_of(engine)
        if device_input is not None:  # frames can stay on this GPU: NVDEC is the other ceiling
            from streams.bench.decode import run_sessions_in_processes

            # The best of one process and several: a single process is GIL-bound well
            # below what NVDEC can do, and the pipeline runs several worker processes.
            trials = [run_sessions_in_processes(Path(args.clip), sessions,
                                                min(args.duration, 10.0), device_input.device_index,
                                                processes)
                      for sessions, processes in NVDEC_CEILING_TRIALS]
            for trial in trials:
                print(f"NVDEC decode-only    : {trial['total_fps']:8.0f} frames/s "
                      f"({trial['sessions']} sessions in {trial['processes']} processes)",
                      flush=True)
            result["nvdec_trials"] = trials
            result["nvdec"] = max(trials, key=lambda t: t["total_fps"])
        ceiling = min(result["engine"]["img_per_s"],
                      result.get("nvdec", {}).get("total_fps", float("inf")))
        result["ceiling_fps"] = ceiling
        print(f"ceiling              : {ceiling:8.0f} frames/s (the lower of the two)",
              flush=True)
        print(f"{'streams':>7} {'procs':>5} {'paced':>6} {'offered':>8} {'inferred':>9} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'drops':>7} {'GPU %':>6} {'NVDEC %':>7} {'of ceiling':>10}",
              flush=True)
        for paced in (True, False):
            for n in counts:
                cfg = bench_config(config, n, paced=paced, clip=args.clip)
                row = measure_pipeline(cfg, engine, labels, model_name, args.duration,
                                       processes_for(cfg, n, args.processes), args.warmup)
                row.update(paced=paced, of_ceiling=row["fps"] / ceiling)
                rows.append(row)
                print(f"{n:>7} {row['processes']:>5} {paced!s:>6} {row['offered_fps']:>8.0f} "
                      f"{row['fps']:>9.0f} "
                      f"{row['latency_p50_ms']:>7.1f} {row['latency_p99_ms']:>7.1f} "
                      f"{row['dropped']:>7} {row.get('gpu_util_pct', float('nan')):>6.0f} "
                      f"{row.get('nvdec_util_pct', float('nan')):>7.0f} "
                      f"{row['of_ceiling']:>10.1%}  {cpu_line(row, 3)}", flush=True)
    finally:
        engine.close()
    result["rows"] = rows
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0
