"""``streams bridge``: the bridges of a config's ``sinks:`` (or ``--sink URL``) on their own,
next to a pipeline that runs elsewhere (another service, another box).

Here each bridge is a thread set in this one process (``streams run`` gives each a process);
their figures are on this process's own ``/metrics`` port (``--metrics-port``, 9109), and
every 10 s one log line per bridge says where it stands.
"""

from __future__ import annotations

import argparse
import logging
import re
import time

from streams.cli.usage import UsageError

logger = logging.getLogger("streams.bridge")

SUMMARY_EVERY_S = 10.0


def run_bridge(args: argparse.Namespace, signals) -> int:
    from streams.bus.metrics import serve_metrics
    from streams.config import PublishConfig, check_endpoint, load_config, sinks_from_urls
    from streams.errors import ConfigError
    from streams.sinks.base import Bridge
    from streams.sinks.metrics import SinkCollector
    from streams.sinks.process import connect_endpoint

    config = load_config(args.config) if args.config is not None else None
    if args.sink:
        try:
            sinks = sinks_from_urls(args.sink)
        except ConfigError as err:
            raise UsageError("--sink", re.sub(r"^sinks\[\d+\]\.url: ", "", str(err))) from None
    elif config is not None:
        sinks = config.sinks
    else:
        raise UsageError("config", "give a config file with sinks:, or --sink URL")
    if not sinks:
        raise UsageError("config", f"{args.config} has no sinks:; add one or give --sink URL")
    if args.endpoint is not None:
        try:
            check_endpoint(args.endpoint, "--endpoint")
        except ConfigError as err:
            raise UsageError("--endpoint", str(err).split(": ", 1)[1]) from None
    endpoint = args.endpoint or (config.publish if config else PublishConfig()).endpoint
    endpoint = connect_endpoint(endpoint)
    host = config.metrics.host if config is not None else "127.0.0.1"
    bridges = [Bridge(sink, endpoint) for sink in sinks]
    for bridge in bridges:
        bridge.start()
    logger.info("bridging %s to %s", endpoint, ", ".join(b.label for b in bridges))
    server = serve_metrics(
        None, host, args.metrics_port, [SinkCollector(lambda: [b.figures() for b in bridges])]
    )
    began = time.monotonic()
    try:
        while not signals.stop.wait(min(SUMMARY_EVERY_S, _left(args.duration, began))):
            if args.duration is not None and time.monotonic() - began >= args.duration:
                break
            _summary(bridges)
    finally:
        for bridge in bridges:
            bridge.stop()
        if server is not None:
            server.shutdown()
    _summary(bridges)
    return 0


def _left(duration: float | None, began: float) -> float:
    if duration is None:
        return SUMMARY_EVERY_S
    return max(0.01, duration - (time.monotonic() - began))


def _summary(bridges) -> None:
    for bridge in bridges:
        f = bridge.figures()
        dropped = sum(f["dropped"].values())
        error = f"; {f['error']}" if f["error"] and f["state"] != "connected" else ""
        logger.info(
            "%s: %s, %d received, %d sent, %d dropped, queue %d/%d%s",
            bridge.label,
            f["state"],
            f["received"],
            f["sent"],
            dropped,
            f["queue_depth"],
            f["queue_bound"],
            error,
        )
