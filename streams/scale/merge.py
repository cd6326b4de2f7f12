"""One view of many worker processes: their snapshots merged, a pure function.

Why apart from the supervisor: the merge is arithmetic on plain dicts (what the workers
report), testable without processes, and the one place that decides what a merged figure
means (counters summed and carried over restarts, states from the supervisor's view).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streams.states import StreamState

COUNTERS = ("decoded", "processed", "dropped", "reconnects")
# A stream row's zone and line counts that carry over a worker's death (occupancy does not:
# the objects inside went with the worker's tracks): list key -> (name key, counters).
ANALYTICS = {
    "zones": ("zone", ("entered", "exited", "dwell_alerts")),
    "lines": ("line", ("in", "out")),
}


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


def analytics_base(base: Mapping | None, row: Mapping) -> dict:
    """``base`` plus the zone and line counts of ``row`` (a dead worker's last row of a
    stream): ``{"zones": {name: {class: {counter: n}}}, "lines": ...}``."""
    out = {
        key: {
            n: {c: dict(v) for c, v in per.items()} for n, per in (base or {}).get(key, {}).items()
        }
        for key in ANALYTICS
    }
    for key, (name_key, counters) in ANALYTICS.items():
        for item in row.get(key, ()):
            per_class = out[key].setdefault(item[name_key], {})
            for entry in item["by_class"]:
                counts = per_class.setdefault(entry["class"], dict.fromkeys(counters, 0))
                for counter in counters:
                    counts[counter] += entry[counter]
    return out


def _with_analytics_base(row: dict, base: Mapping) -> None:
    """Adds a stream's carried zone and line counts (``analytics_base``) to its row, in place:
    per class, then the totals again."""
    for key, (name_key, counters) in ANALYTICS.items():
        carried = base.get(key) or {}
        if not carried:
            continue
        shown = ("occupancy", *counters) if key == "zones" else counters
        items = row.get(key)
        if items is None:  # no worker has reported the stream since: the carried counts alone
            items = [{name_key: name, "by_class": []} for name in carried]
        merged = []
        for item in items:
            by_class = {entry["class"]: dict(entry) for entry in item["by_class"]}
            for label, counts in carried.get(item[name_key], {}).items():
                entry = by_class.setdefault(label, {"class": label, **dict.fromkeys(shown, 0)})
                for counter in counters:
                    entry[counter] += counts[counter]
            rows = [by_class[label] for label in sorted(by_class)]
            totals = {k: sum(r[k] for r in rows) for k in shown}
            merged.append({name_key: item[name_key], **totals, "by_class": rows})
        row[key] = merged


def merge_snapshots(
    stream_ids: Sequence[str],
    snapshots: Sequence[Mapping],
    states: Mapping[str, str],
    counter_bases: Mapping[str, Mapping[str, int]],
    own: Mapping[str, int],
    restarts: int,
    processes: int,
    uptime_s: float,
    analytics_bases: Mapping[str, Mapping] | None = None,
) -> dict:
    """The merged snapshot, streams in config order.

    Args:
        stream_ids: every configured stream, in config order.
        snapshots: each live worker's last snapshot (``{}`` for one that has none).
        states: the supervisor's view of each stream's state (it knows of dead workers).
        counter_bases: per stream, the counters of workers that died (so none goes back).
        own: the supervisor's own publisher figures (``published``, ``publish_dropped``).
        restarts, processes: worker restarts so far, and worker processes.
        analytics_bases: per stream, the zone and line counts of workers that died
            (``analytics_base``), added to the live worker's.
    """
    latest = {s["stream"]: s for snap in snapshots for s in snap.get("streams", [])}
    pipelines = [snap["pipeline"] for snap in snapshots if snap]
    streams = []
    for sid in stream_ids:
        row = dict(latest.get(sid) or empty_stream(sid))
        row["state"] = StreamState(states.get(sid, row["state"])).value
        for key, value in counter_bases.get(sid, {}).items():
            row[key] += value
        if analytics_bases and sid in analytics_bases:
            _with_analytics_base(row, analytics_bases[sid])
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
        "nvdec_sessions": sum(p.get("nvdec_sessions", 0) for p in pipelines),
        "processes": processes,
        "restarts": restarts,
    }
    return {"uptime_s": uptime_s, "streams": streams, "pipeline": pipeline}


def gpu_figures(
    gpus: Sequence[int],
    workers: Sequence[Mapping],
    snapshots: Sequence[Mapping],
    failed: Mapping[int, str],
) -> list[dict]:
    """Per GPU (several GPUs): its model, state, workers, streams and figures.

    Args:
        gpus: every GPU of the run, in ``engine.device`` order.
        workers: per worker, ``gpu``, ``name`` (the GPU's model once known) and ``streams``
            (the ids it runs now).
        snapshots: each worker's last snapshot (``{}`` for none), in worker order.
        failed: the GPUs taken out, and why.

    ``fps`` sums the GPU's streams' processed frames per second; ``mean_batch`` and
    ``inference_p50_ms`` are over its workers, as ``merge_snapshots`` does for all of them.
    """
    out = []
    for gpu in gpus:
        mine = [i for i, w in enumerate(workers) if w["gpu"] == gpu]
        pipelines = [snapshots[i]["pipeline"] for i in mine if snapshots[i]]
        rows = [r for i in mine if snapshots[i] for r in snapshots[i].get("streams", [])]
        batches = sum(p["batches"] for p in pipelines)
        frames = sum(p["mean_batch"] * p["batches"] for p in pipelines)
        inference = sorted(p["inference_p50_ms"] for p in pipelines if p["inference_p50_ms"])
        names = [workers[i]["name"] for i in mine if workers[i].get("name")]
        figures = {
            "gpu": gpu,
            "name": names[0] if names else None,
            "state": "failed" if gpu in failed else "ok",
            "processes": len(mine),
            "streams": sum(len(workers[i]["streams"]) for i in mine),
            "fps": round(sum(r["fps"] for r in rows), 2),
            "batches": batches,
            "mean_batch": round(frames / batches, 2) if batches else 0.0,
            "inference_p50_ms": round(inference[len(inference) // 2], 2) if inference else None,
        }
        if gpu in failed:
            figures["reason"] = failed[gpu]
        out.append(figures)
    return out
