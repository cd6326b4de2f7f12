"""The bridges' figures on Prometheus: read at scrape time from ``figures()`` (one dict per
sink, ``Bridge.figures`` plus ``restarts`` where the bridge runs as a child process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from streams.sinks.base import STATES

Figures = Callable[[], list[dict]]
RESTARTING = "restarting"  # a bridge process that died, waiting to start again


class SinkCollector:
    def __init__(self, figures: Figures) -> None:
        self._figures = figures

    def collect(self):
        labels = ["sink", "type"]
        received = CounterMetricFamily(
            "streams_sink_messages_received", "Bus messages the bridge read", labels=labels
        )
        sent = CounterMetricFamily(
            "streams_sink_messages_sent", "Messages handed to the broker", labels=labels
        )
        dropped = CounterMetricFamily(
            "streams_sink_dropped",
            "Messages dropped (reason: queue_full: oldest out of the bridge's buffer; "
            "client_queue: the broker client's queue; lost_in_flight: sent as the connection "
            "broke)",
            labels=[*labels, "reason"],
        )
        depth = GaugeMetricFamily(
            "streams_sink_queue_depth", "Messages waiting in the bridge's buffer", labels=labels
        )
        bound = GaugeMetricFamily(
            "streams_sink_queue_bound", "The bridge's buffer bound (queue_size)", labels=labels
        )
        connected = GaugeMetricFamily(
            "streams_sink_connected", "1 while connected to the broker", labels=labels
        )
        state = GaugeMetricFamily(
            "streams_sink_state",
            "1 for the bridge's current state (connecting, connected, reconnecting, ...)",
            labels=[*labels, "state"],
        )
        reconnects = CounterMetricFamily(
            "streams_sink_reconnects", "Connections lost or refused", labels=labels
        )
        restarts = CounterMetricFamily(
            "streams_sink_restarts", "Bridge processes restarted after dying", labels=labels
        )
        for row in self._figures():
            key = [row["sink"], row["type"]]
            received.add_metric(key, row["received"])
            sent.add_metric(key, row["sent"])
            for reason, count in row["dropped"].items():
                dropped.add_metric([*key, reason], count)
            depth.add_metric(key, row["queue_depth"])
            bound.add_metric(key, row["queue_bound"])
            connected.add_metric(key, 1.0 if row["state"] == "connected" else 0.0)
            for name in (*STATES, RESTARTING):
                state.add_metric([*key, name], 1.0 if row["state"] == name else 0.0)
            reconnects.add_metric(key, row["reconnects"])
            restarts.add_metric(key, row.get("restarts", 0))
        yield from (received, sent, dropped, depth, bound, connected, state, reconnects, restarts)
