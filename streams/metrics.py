"""Prometheus metrics on ``/metrics``, read from the pipeline's own counters at scrape time.

A custom collector avoids keeping a second set of counters in step with StreamStats.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from streams.pipeline import Pipeline

logger = logging.getLogger(__name__)


class PipelineCollector:
    """Exposes per-stream and pipeline figures of one Pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    def collect(self):
        pipeline = self._pipeline
        counters = {
            "decoded": CounterMetricFamily("streams_frames_decoded", "Frames decoded", labels=["stream"]),
            "processed": CounterMetricFamily("streams_frames_processed", "Frames inferred and published", labels=["stream"]),
            "dropped": CounterMetricFamily("streams_frames_dropped", "Frames replaced in the latest-frame slot before inference", labels=["stream"]),
            "reconnects": CounterMetricFamily("streams_reconnects", "Reconnect attempts", labels=["stream"]),
        }
        fps = GaugeMetricFamily("streams_fps", "Processed frames per second (5 s window)", labels=["stream"])
        latency = GaugeMetricFamily("streams_latency_ms", "Frame-to-publish latency percentile (5 s window)", labels=["stream", "quantile"])
        up = GaugeMetricFamily("streams_stream_live", "1 while the stream is live", labels=["stream"])
        for stats in pipeline.stream_stats.values():
            sid = stats.stream_id
            for key, family in counters.items():
                family.add_metric([sid], getattr(stats, key))
            fps.add_metric([sid], stats.latency_ms.rate())
            for quantile, value in zip(("0.5", "0.99"), stats.latency_ms.percentiles((50, 99))):
                if not math.isnan(value):
                    latency.add_metric([sid, quantile], value)
            up.add_metric([sid], 1.0 if stats.state == "live" else 0.0)
        yield from counters.values()
        yield from (fps, latency, up)
        totals = pipeline.stats
        yield CounterMetricFamily("streams_batches", "Batches inferred", value=totals.batches)
        yield CounterMetricFamily("streams_published_messages", "Messages sent", value=totals.published)
        yield CounterMetricFamily("streams_publish_dropped", "Messages dropped by the publisher queue", value=totals.publish_dropped)
        mean = totals.batch_frames / totals.batches if totals.batches else 0.0
        yield GaugeMetricFamily("streams_mean_batch_size", "Mean frames per batch", value=mean)


def serve_metrics(pipeline: Pipeline, host: str, port: int):
    """Start the ``/metrics`` HTTP server; returns the server (call ``shutdown()``) or None."""
    if port == 0:
        return None
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as err:
        logger.error("metrics.port: cannot serve /metrics on %s:%d (%s); continuing without it",
                     host, port, err)
        return None
    logger.info("metrics on http://%s:%d/metrics", host, port)
    return server
