"""One view of many worker processes: their snapshots merged, a pure function.

Why apart from the supervisor: the merge is arithmetic on plain dicts (what the workers
report), testable without processes, and the one place that decides what a merged figure
means (counters summed and carried over restarts, states from the supervisor's view).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streams.states import StreamState

COUNTERS = ("decoded", "processed", "dropped", "reconnects")


def empty_stream(stream_id: str) -> dict:
    """The row of a stream no worker has reported yet."""
    return {
        "stream": stream_id,
        "state": StreamState.STARTING.value,
        "fps": 0.0,
        "p50_ms": None,
        "p99_ms": None,
        **dict.fromkeys(COUNTERS, 0),
    }


def merge_snapshots(
    stream_ids: Sequence[str],
    snapshots: Sequence[Mapping],
    states: Mapping[str, str],
    counter_bases: Mapping[str, Mapping[str, int]],
    own: Mapping[str, int],
    restarts: int,
    processes: int,
    uptime_s: float,
) -> dict:
    """The merged snapshot, streams in config order.

    Args:
        stream_ids: every configured stream, in config order.
        snapshots: each live worker's last snapshot (``{}`` for one that has none).
        states: the supervisor's view of each stream's state (it knows of dead workers).
        counter_bases: per stream, the counters of workers that died (so none goes back).
        own: the supervisor's own publisher figures (``published``, ``publish_dropped``).
        restarts, processes: worker restarts so far, and worker processes.
    """
    latest = {s["stream"]: s for snap in snapshots for s in snap.get("streams", [])}
    pipelines = [snap["pipeline"] for snap in snapshots if snap]
    streams = []
    for sid in stream_ids:
        row = dict(latest.get(sid) or empty_stream(sid))
        row["state"] = StreamState(states.get(sid, row["state"])).value
        for key, value in counter_bases.get(sid, {}).items():
            row[key] += value
        streams.append(row)
    batches = sum(p["batches"] for p in pipelines)
    frames = sum(p["mean_batch"] * p["batches"] for p in pipelines)
    inference = sorted(p["inference_p50_ms"] for p in pipelines if p["inference_p50_ms"])
    pipeline = {
        "batches": batches,
        "mean_batch": round(frames / batches, 2) if batches else 0.0,
        "inference_p50_ms": round(inference[len(inference) // 2], 2) if inference else None,
        "published": sum(p["published"] for p in pipelines) + own["published"],
        "publish_dropped": sum(p["publish_dropped"] for p in pipelines) + own["publish_dropped"],
        "processes": processes,
        "restarts": restarts,
    }
    return {"uptime_s": uptime_s, "streams": streams, "pipeline": pipeline}
