"""Prometheus metrics on ``/metrics``, read from the pipeline's snapshot at scrape time.

A custom collector avoids keeping a second set of counters in step with StreamStats, and
works the same for one process (``Pipeline.snapshot``) and many (``Supervisor.snapshot``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

logger = logging.getLogger(__name__)

Snapshot = Callable[[], dict]
ZONE_EVENTS = (("enter", "entered"), ("exit", "exited"), ("dwell", "dwell_alerts"))


class PipelineCollector:
    """Exposes per-stream and pipeline figures of one snapshot source."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self):
        snapshot = self._snapshot()
        counters = {
            "decoded": CounterMetricFamily(
                "streams_frames_decoded", "Frames decoded", labels=["stream"]
            ),
            "processed": CounterMetricFamily(
                "streams_frames_processed", "Frames inferred and published", labels=["stream"]
            ),
            "dropped": CounterMetricFamily(
                "streams_frames_dropped",
                "Frames replaced in the latest-frame slot before inference",
                labels=["stream"],
            ),
            "reconnects": CounterMetricFamily(
                "streams_reconnects", "Reconnect attempts", labels=["stream"]
            ),
        }
        fps = GaugeMetricFamily(
            "streams_fps", "Processed frames per second (5 s window)", labels=["stream"]
        )
        latency = GaugeMetricFamily(
            "streams_latency_ms",
            "Frame-to-publish latency percentile (5 s window)",
            labels=["stream", "quantile"],
        )
        up = GaugeMetricFamily(
            "streams_stream_live", "1 while the stream is live", labels=["stream"]
        )
        zone_events = CounterMetricFamily(
            "streams_zone_events",
            "Zone events of tracked objects (event: enter, exit, dwell)",
            labels=["stream", "zone", "class", "event"],
        )
        occupancy = GaugeMetricFamily(
            "streams_zone_occupancy",
            "Tracked objects inside the zone now",
            labels=["stream", "zone"],
        )
        crossings = CounterMetricFamily(
            "streams_line_crossings",
            "Line crossings of tracked objects, once per object and direction",
            labels=["stream", "line", "class", "direction"],
        )
        record_files = CounterMetricFamily(
            "streams_record_files",
            "Snapshots and clips written (kind: snapshot, clip)",
            labels=["stream", "kind"],
        )
        record_lost = CounterMetricFamily(
            "streams_record_lost",
            "Snapshot and clip jobs lost (why: dropped by the full queue, error writing)",
            labels=["stream", "why"],
        )
        record_buffer = GaugeMetricFamily(
            "streams_record_buffer_bytes",
            "Compressed packet bytes the stream's clip ring holds",
            labels=["stream"],
        )
        for stream in snapshot["streams"]:
            sid = stream["stream"]
            if (record := stream.get("record")) is not None:
                record_files.add_metric([sid, "snapshot"], record["snapshots"])
                record_files.add_metric([sid, "clip"], record["clips"])
                record_lost.add_metric([sid, "dropped"], record["dropped"])
                record_lost.add_metric([sid, "error"], record["errors"])
                record_buffer.add_metric([sid], record["buffer_bytes"])
            for key, family in counters.items():
                family.add_metric([sid], stream[key])
            fps.add_metric([sid], stream["fps"])
            for quantile, key in (("0.5", "p50_ms"), ("0.99", "p99_ms")):
                if stream[key] is not None:
                    latency.add_metric([sid, quantile], stream[key])
            up.add_metric([sid], 1.0 if stream["state"] == "live" else 0.0)
            for zone in stream.get("zones", ()):
                occupancy.add_metric([sid, zone["zone"]], zone["occupancy"])
                for row in zone["by_class"]:
                    for event, key in ZONE_EVENTS:
                        zone_events.add_metric([sid, zone["zone"], row["class"], event], row[key])
            for line in stream.get("lines", ()):
                for row in line["by_class"]:
                    for direction in ("in", "out"):
                        crossings.add_metric(
                            [sid, line["line"], row["class"], direction], row[direction]
                        )
        yield from counters.values()
        yield from (fps, latency, up, zone_events, occupancy, crossings)
        yield from (record_files, record_lost, record_buffer)
        totals = snapshot["pipeline"]
        yield CounterMetricFamily("streams_batches", "Batches inferred", value=totals["batches"])
        yield CounterMetricFamily(
            "streams_published_messages", "Messages sent", value=totals["published"]
        )
        yield CounterMetricFamily(
            "streams_publish_dropped",
            "Messages dropped by the publisher queue",
            value=totals["publish_dropped"],
        )
        yield GaugeMetricFamily(
            "streams_mean_batch_size", "Mean frames per batch", value=totals["mean_batch"]
        )
        yield GaugeMetricFamily(
            "streams_nvdec_sessions",
            "NVDEC decoder sessions open now (every worker process)",
            value=totals.get("nvdec_sessions", 0),
        )
        if "shard" in totals:  # run --shard: which node of the cluster this is
            shard = GaugeMetricFamily(
                "streams_shard",
                "This node's shard (run --shard K/N), labelled index and count; always 1",
                labels=["index", "count"],
            )
            shard.add_metric([str(totals["shard"]["index"]), str(totals["shard"]["count"])], 1)
            yield shard
        gpus = totals.get("gpus")
        if gpus:  # several GPUs: each one's share
            gpu_fps = GaugeMetricFamily(
                "streams_gpu_fps", "Processed frames per second on the GPU", labels=["gpu"]
            )
            gpu_streams = GaugeMetricFamily(
                "streams_gpu_streams", "Streams the GPU runs now", labels=["gpu"]
            )
            gpu_up = GaugeMetricFamily(
                "streams_gpu_ok", "1 while the GPU serves, 0 once it failed", labels=["gpu"]
            )
            for gpu in gpus:
                label = [str(gpu["gpu"])]
                gpu_fps.add_metric(label, gpu["fps"])
                gpu_streams.add_metric(label, gpu["streams"])
                gpu_up.add_metric(label, 1.0 if gpu["state"] == "ok" else 0.0)
            yield from (gpu_fps, gpu_streams, gpu_up)


def serve_metrics(snapshot: Snapshot | None, host: str, port: int, collectors=()):
    """Start the ``/metrics`` HTTP server; returns the server (call ``shutdown()``) or None.

    ``collectors``: more Prometheus collectors on the same endpoint (the bridges' figures);
    ``snapshot`` None serves only those (``streams bridge``).
    """
    if port == 0:
        return None
    registry = CollectorRegistry()
    if snapshot is not None:
        registry.register(PipelineCollector(snapshot))
    for collector in collectors:
        registry.register(collector)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as err:
        logger.error(
            "metrics.port: cannot serve /metrics on %s:%d (%s); continuing without it",
            host,
            port,
            err,
        )
        return None
    logger.info("metrics on http://%s:%d/metrics", host, port)
    return server
