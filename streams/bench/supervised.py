"""The pipeline over worker processes, measured where users see it: at a real subscriber on the
relay (``det`` messages, their latencies and ``seq`` gaps), with the workers' own reports
for what only they know (decoded frames, batches, thread CPU)."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace

import numpy as np

from streams.bench.measure import WARMUP_S, GpuSampler, process_cpu_s
from streams.bus.messages import LATENCY_KEYS
from streams.config import Config


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


def bench_supervised(
    config: Config,
    processes: int,
    duration_s: float,
    warmup_s: float = WARMUP_S,
    gpus: list[int] | None = None,
) -> dict:
    """The pipeline over ``processes`` worker processes, measured at a real subscriber;
    ``gpus``: the workers pinned to these GPUs (each GPU's figures in ``gpus``)."""
    from streams.scale.supervisor import Supervisor

    config = replace(config, publish=replace(config.publish, stats_interval_s=0.5))
    supervisor = Supervisor(config, processes, logging.getLogger().level, gpus)
    recorder = DetRecorder(supervisor.endpoint)
    try:
        supervisor.start()
        if not supervisor.wait_running():
            raise RuntimeError(f"not every one of {processes} worker processes started")
        time.sleep(warmup_s)
        before = supervisor.worker_reports()
        pids = supervisor.worker_pids()
        cpu_before = {pid: process_cpu_s(pid) for pid in pids}
        recorder.recording = True
        start = time.perf_counter()
        sampler = GpuSampler()
        time.sleep(duration_s)
        recorder.recording = False
        elapsed = time.perf_counter() - start
        utilisation = sampler.stop()
        cpu = [round(100 * (process_cpu_s(pid) - cpu_before[pid]) / elapsed, 1) for pid in pids]
        time.sleep(config.publish.stats_interval_s + 0.1)  # a report from after the window
        after = supervisor.worker_reports()
        merged = supervisor.snapshot()
    finally:
        supervisor.stop()
        recorder.close()
        supervisor.close()

    rates = worker_rates(before, after)
    latencies = np.asarray([b["total"] for b in recorder.breakdowns], dtype=np.float64)
    p50, p99 = np.percentile(latencies, [50, 99]) if latencies.size else (np.nan, np.nan)
    parts = (
        {
            key: [
                round(float(v), 2)
                for v in np.percentile([b[key] for b in recorder.breakdowns], [50, 99])
            ]
            for key in LATENCY_KEYS
        }
        if recorder.breakdowns
        else {}
    )
    return {
        "streams": len(config.streams),
        "processes": processes,
        "fps": latencies.size / elapsed,
        "offered_fps": (latencies.size + recorder.missing) / elapsed,
        "decoded_fps": rates["decoded_per_s"],
        "dropped": recorder.missing,  # exact: seq gaps at the subscriber
        "dropped_at_board": round(rates["dropped_per_s"] * elapsed),
        "mean_batch": rates["mean_batch"],
        "batches": round(rates["batches_per_s"] * elapsed),
        "latency_p50_ms": float(p50),
        "latency_p99_ms": float(p99),
        "published": merged["pipeline"]["published"],
        "publish_dropped": merged["pipeline"]["publish_dropped"],
        "restarts": merged["pipeline"]["restarts"],
        "gpus": _gpu_rates(before, after, supervisor.worker_gpus(), merged),
        "latency_parts_p50_p99_ms": parts,
        **utilisation,
        "process_cpu_pct": round(sum(cpu), 1),
        "workers_cpu_pct": cpu,
        "threads_cpu_pct": rates["threads_cpu_pct"],
    }


def _gpu_rates(
    before: list[tuple[dict, dict]],
    after: list[tuple[dict, dict]],
    gpus: list[int | None],
    merged: dict,
) -> list[dict] | None:
    """Per GPU over the timed window: frames/s inferred (from its workers' own reports, as
    ``worker_rates`` computes them for all) and its streams; None on one device."""
    if not any(g is not None for g in gpus) or len(set(gpus)) < 2:
        return None
    out = []
    for gpu in dict.fromkeys(gpus):
        mine = [i for i, g in enumerate(gpus) if g == gpu]
        rates = worker_rates([before[i] for i in mine], [after[i] for i in mine])
        streams = sum(len(after[i][0].get("streams", [])) for i in mine if after[i][0])
        out.append(
            {
                "gpu": gpu,
                "fps": round(rates["mean_batch"] * rates["batches_per_s"], 1),
                "decoded_fps": round(rates["decoded_per_s"], 1),
                "streams": streams,
            }
        )
    named = {g["gpu"]: g for g in merged["pipeline"].get("gpus", [])}
    for row in out:
        row["name"] = named.get(row["gpu"], {}).get("name")
        row["state"] = named.get(row["gpu"], {}).get("state", "ok")
    return out


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
            grown = sum(s[key] for s in last["streams"]) - sum(s[key] for s in first["streams"])
            totals[f"{key}_per_s"] += grown / span_s
        a, b = first["pipeline"], last["pipeline"]
        totals["batches_per_s"] += (b["batches"] - a["batches"]) / span_s
        frames_per_s += (b["mean_batch"] * b["batches"] - a["mean_batch"] * a["batches"]) / span_s
        for group, seconds in last_cpu.items():
            threads[group] = (
                threads.get(group, 0.0) + (seconds - first_cpu.get(group, 0.0)) / span_s
            )
    totals["mean_batch"] = (
        frames_per_s / totals["batches_per_s"] if totals["batches_per_s"] else 0.0
    )
    totals["threads_cpu_pct"] = {
        group: round(100 * value, 1)
        for group, value in sorted(threads.items(), key=lambda item: -item[1])
    }
    return totals
