"""Configuration: YAML over defaults, validated up front into frozen dataclasses.

Every error names the key path (``streams[1].url``), what was expected and what was found,
so `python -m streams run` can refuse a bad file before anything starts.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from engines.options import BACKENDS, INT8_METHODS, PRECISIONS, EngineOptions
from processors.formats import HEAD_FORMATS
from streams.assets import BUILTIN_MODEL, SAMPLE_VIDEOS
from streams.errors import ConfigError

STREAM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
DECODERS = ("auto", "opencv", "nvdec")
PACES = ("realtime", "none")
UNITS = ("pixels", "fraction")
EVENT_KINDS = ("enter", "exit", "dwell", "cross")  # what zones and lines report


@dataclass(frozen=True)
class TrackingConfig:
    """Track ids for a stream's boxes (processors/track: ByteTrack-class, per stream).

    The knobs are :class:`processors.track.TrackerParams`' that a user tunes; the rest keep
    ByteTrack's defaults. ``streams[i].tracking`` overrides any of them for one stream.
    """

    enabled: bool = False
    high_score: float = 0.5
    low_score: float = 0.1
    new_track_score: float = 0.6
    confirm_hits: int = 2
    max_lost_s: float = 1.0


@dataclass(frozen=True)
class RecordConfig:
    """Snapshots and clips of a stream's zone and line events (streams/record).

    ``dir`` and ``max_bytes`` (the whole directory's cap, oldest files removed first) are
    top-level only, as is ``queue_size`` (the one writer thread's); the rest may be
    overridden per stream (``streams[i].record``), as
    ``tracking`` is. ``buffer_bytes`` bounds each stream's ring of compressed packets.
    """

    enabled: bool = False
    dir: str = "recordings"
    max_bytes: int = 1 << 30
    pre_s: float = 5.0
    post_s: float = 5.0
    snapshots: bool = True
    clips: bool = True
    events: tuple[str, ...] = EVENT_KINDS
    buffer_bytes: int = 64 << 20
    queue_size: int = 64


@dataclass(frozen=True)
class ZoneConfig:
    """A polygon of one stream (``streams[i].zones[k]``): its points in ``units``.

    ``units: pixels`` (the default) are source pixels, checked against the frame once the
    stream is live; ``fraction`` points are 0..1 of the frame's width and height, scaled when
    it is. ``classes``: the label names it counts (None: every class).
    """

    name: str
    points: tuple[tuple[float, float], ...]
    classes: tuple[str, ...] | None = None
    dwell_alert_s: float | None = None
    units: str = "pixels"


@dataclass(frozen=True)
class LineConfig:
    """A counting line of one stream (``streams[i].lines[k]``), from ``a`` to ``b``."""

    name: str
    a: tuple[float, float]
    b: tuple[float, float]
    classes: tuple[str, ...] | None = None
    units: str = "pixels"


@dataclass(frozen=True)
class StreamConfig:
    """One camera or file.

    ``pace: realtime`` replays files at their own frame rate, like a camera (newest frame
    wins, older ones are dropped and counted); ``none`` reads a file as fast as the pipeline
    takes frames and drops nothing (benchmarks, batch jobs). Network streams are always live.
    """

    id: str
    url: str
    loop: bool = False
    fps: float | None = None
    decoder: str = "auto"
    pace: str = "realtime"
    tracking: TrackingConfig = field(default_factory=TrackingConfig)  # top level merged in
    zones: tuple[ZoneConfig, ...] = ()
    lines: tuple[LineConfig, ...] = ()
    record: RecordConfig = field(default_factory=RecordConfig)  # top level merged in

    @property
    def is_file(self) -> bool:
        return not _is_network_url(self.url)


@dataclass(frozen=True)
class ModelConfig:
    path: str = BUILTIN_MODEL
    head: str = "auto"
    labels: str = "coco"
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 100


@dataclass(frozen=True)
class BatchConfig:
    max_wait_ms: float = 10.0


@dataclass(frozen=True)
class CaptureConfig:
    """Reconnect and timeout policy shared by every network stream."""

    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 10.0


@dataclass(frozen=True)
class CurveConfig:
    """ZeroMQ CURVE encryption + client authentication (keys from `python -m streams keys`).

    ``server_secret_key``: the server's ``.key_secret`` certificate file.
    ``authorized_clients``: a directory of client public ``.key`` files; only those connect.
    """

    server_secret_key: str
    authorized_clients: str


@dataclass(frozen=True)
class PublishConfig:
    endpoint: str = "tcp://127.0.0.1:5555"
    sndhwm: int = 1000
    queue_size: int = 4096
    stats_interval_s: float = 1.0
    # After binding, wait this long before the first message so that subscribers already
    # waiting for this endpoint reconnect and subscribe (PUB/SUB "slow joiner") and see the
    # very first status events.
    join_grace_ms: int = 300
    curve: CurveConfig | None = None


@dataclass(frozen=True)
class MetricsConfig:
    """The old, separate ``/metrics`` listener (prometheus_client's): off unless a port is
    given, since ``/metrics`` is served on ``http.port`` (docs/design-changes.md)."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: no separate listener


TOKEN_ENV = "STREAMS_API_TOKEN"  # the API token when http.token is not set
TOKEN_MIN_CHARS = 16


@dataclass(frozen=True)
class HttpConfig:
    """The HTTP server of ``streams run`` (streams/http): ``/metrics``, the REST API under
    ``/api``, ``/healthz`` and ``/readyz``. ``token``: what mutating API calls must send as
    ``Authorization: Bearer ...`` (``http.token``, else ``$STREAMS_API_TOKEN``); None: the
    API is read-only. Never logged or returned (``/api/config`` shows ``***``)."""

    host: str = "127.0.0.1"
    port: int = 9108  # 0 turns the server off
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PreviewConfig:
    """The annotated pictures of the browser view (streams/runtime/preview.py): made only
    for a stream somebody subscribes to ``preview/<id>/``, at most ``fps`` a second, scaled
    down to ``max_width`` pixels, JPEG at ``quality``."""

    fps: float = 5.0
    max_width: int = 640
    quality: int = 75


@dataclass(frozen=True)
class WorkersConfig:
    """How many processes share the streams (see streams/scale/supervisor.py).

    One Python process has one GIL, so a GPU host with many streams runs several; each also
    pays its own batcher, completer and stats threads per batch, so fewer, fuller processes
    cost less CPU per stream. ``processes: auto`` runs one process on the CPU backend (ONNX
    Runtime already uses every core) and one per ``streams_per_process`` streams on a GPU (48:
    on the H200, 128 paced 1080p30 streams in 3 processes took 1.8 % of a core each against
    2.4 % in 6, and unpaced the 3 reached 99.1 % of the NVDEC ceiling; docs/benchmarks.md);
    each process has its own engine and publishes through one relay at ``publish.endpoint``.
    With several GPUs (``engine.device`` a list or ``all``), a GPU whose workers die more than
    ``gpu_restart_budget`` times within ``gpu_restart_window_s`` has its streams moved to the
    other GPUs (streams/scale/placement.py).
    """

    processes: int | str = "auto"
    streams_per_process: int = 48
    gpu_restart_budget: int = 3
    gpu_restart_window_s: float = 120.0


SINK_TYPES = ("mqtt", "redis", "nats")
SINK_SCHEMES = {"mqtt": ("mqtt", "mqtts"), "redis": ("redis", "rediss"), "nats": ("nats", "tls")}
DEFAULT_QOS = {"det": 0, "status": 1, "event": 1, "stats": 0}  # other kinds: 0
DEFAULT_RETAIN = {"status": True, "stats": True}  # other kinds: not retained
NATS_STORAGE = ("file", "memory")
KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True, repr=False)
class SinkConfig:
    """One bridge from the ZeroMQ bus to a broker (``sinks[i]``, streams/sinks/).

    Every type has the fields above ``# mqtt``; the rest belong to one type (the parser
    accepts a type's own keys only). ``kinds`` None forwards every kind the bus carries, later
    ones too. ``password`` and the URL's user info never appear in a repr or a log line.
    """

    type: str
    url: str
    name: str = ""
    prefix: str = "streams"
    kinds: tuple[str, ...] | None = None
    queue_size: int = 10_000
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    # mqtt
    qos: tuple[tuple[str, int], ...] = ()  # (kind, qos) over DEFAULT_QOS
    retain: tuple[tuple[str, bool], ...] = ()  # (kind, retain) over DEFAULT_RETAIN
    client_id: str | None = None
    keepalive_s: int = 30
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    # redis
    maxlen: int = 10_000
    # nats
    stream: str | None = None
    max_age_s: float = 86_400.0
    max_msgs_per_subject: int = 10_000
    storage: str = "file"

    def qos_of(self, kind: str) -> int:
        return dict(self.qos).get(kind, DEFAULT_QOS.get(kind, 0))

    def retain_of(self, kind: str) -> bool:
        return dict(self.retain).get(kind, DEFAULT_RETAIN.get(kind, False))

    @property
    def label(self) -> str:
        """How logs name it: ``sink mqtt (mqtt://***@host:1883)``."""
        from streams.redact import redact_url

        return f"sink {self.name} ({redact_url(self.url)})"

    def __repr__(self) -> str:
        return f"SinkConfig({self.label})"


@dataclass(frozen=True)
class ShardConfig:
    """This node's place in a cluster: node ``index`` (from 0) of ``count``, set by ``run
    --shard`` (or the StatefulSet pod name), never by the YAML file, which every node shares.
    ``streams`` then holds only this node's share (streams/scale/cluster.py)."""

    index: int
    count: int

    def describe(self) -> dict[str, int]:
        """What ``stats`` carries as ``pipeline.shard``."""
        return {"index": self.index, "count": self.count}


@dataclass(frozen=True)
class Config:
    streams: tuple[StreamConfig, ...]
    model: ModelConfig = field(default_factory=ModelConfig)
    engine: EngineOptions = field(default_factory=EngineOptions)
    batch: BatchConfig = field(default_factory=BatchConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    shard: ShardConfig | None = None  # not a YAML key: run --shard (see ShardConfig)
    sinks: tuple[SinkConfig, ...] = ()
    preview: PreviewConfig = field(default_factory=PreviewConfig)


# --- loading -------------------------------------------------------------------------------

# Package data, so that a pip install has it; the repository's config.yaml is a link to it.
DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read, interpolate ``${VAR}`` / ``${VAR:-default}`` and validate a YAML config file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; expected a YAML config file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror})") from err
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not a UTF-8 text YAML file (byte {err.start} cannot be decoded; "
            "save it as UTF-8, or check that this is the config and not e.g. a video)"
        ) from err
    if "\x00" in text:
        raise ConfigError(
            f"{path}: not a UTF-8 text YAML file (it contains NUL bytes; "
            "save it as UTF-8, or check that this is the config and not e.g. a video)"
        )
    try:
        raw = _safe_load_unique(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return parse_config(raw, base_dir=path.parent, environ=environ)


def _safe_load_unique(text: str) -> Any:
    """``yaml.safe_load`` that refuses a mapping key given twice (PyYAML keeps the last one
    silently: a second ``streams:`` list would drop every camera of the first)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_unique_keys(node, "")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_unique_keys(node: yaml.Node, where: str) -> None:
    if isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_unique_keys(item, f"{where}[{index}]")
    elif isinstance(node, yaml.MappingNode):
        first_line: dict[Any, int] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge" or not isinstance(key, yaml.ScalarNode):
                continue
            path = f"{where}.{key.value}" if where else str(key.value)
            line = key.start_mark.line + 1
            if key.value in first_line:
                raise ConfigError(
                    f"{path}: duplicate key {key.value!r} at line {line} "
                    f"(first at line {first_line[key.value]}); YAML keeps only the last one, "
                    "so merge the two or remove one"
                )
            first_line[key.value] = line
            _check_unique_keys(value, path)


def parse_config(
    raw: Any, base_dir: Path = Path("."), environ: dict[str, str] | None = None
) -> Config:
    """Validate an already-parsed YAML document; relative file paths resolve from ``base_dir``."""
    env = os.environ if environ is None else environ
    raw = _interpolate(raw, "", env)
    top = _mapping(raw, "config")
    _reject_unknown(
        top,
        "",
        {
            "streams",
            "model",
            "engine",
            "batch",
            "capture",
            "publish",
            "metrics",
            "http",
            "workers",
            "tracking",
            "record",
            "sinks",
            "preview",
        },
    )
    record_raw = _mapping({} if top.get("record") is None else top["record"], "record")
    record = _parse_record(record_raw, "record", base_dir)
    tracking_raw = _mapping({} if top.get("tracking") is None else top["tracking"], "tracking")
    tracking = _parse_tracking(tracking_raw, "tracking")
    streams = _parse_streams(top.get("streams"), base_dir, tracking_raw, tracking, record_raw)
    model = _parse_model(top.get("model", {}), base_dir)
    _check_analytics_classes(streams, model)
    metrics = _dataclass_section(
        MetricsConfig,
        top.get("metrics", {}),
        "metrics",
        {
            "host": _string,
            "port": _integer(0, 65535),
        },
    )
    http = _parse_http(top.get("http", {}), env)
    if metrics.port and metrics.port == http.port:
        raise ConfigError(
            f"metrics.port: {metrics.port} is also http.port; /metrics is served on http.port "
            "now (http://HOST:PORT/metrics): remove the metrics: section, or give it another "
            "port for a second, separate /metrics listener"
        )
    return Config(
        streams=streams,
        model=model,
        engine=_parse_engine(top.get("engine", {})),
        batch=_dataclass_section(
            BatchConfig, top.get("batch", {}), "batch", {"max_wait_ms": _number(0, 10_000)}
        ),
        capture=_dataclass_section(
            CaptureConfig,
            top.get("capture", {}),
            "capture",
            {
                "open_timeout_s": _number(0.1, 600),
                "read_timeout_s": _number(0.1, 600),
                "reconnect_initial_s": _number(0.01, 600),
                "reconnect_max_s": _number(0.01, 3600),
            },
        ),
        publish=_dataclass_section(
            PublishConfig,
            top.get("publish", {}),
            "publish",
            {
                "endpoint": _endpoint,
                "sndhwm": _integer(1, 10_000_000),
                "queue_size": _integer(1, 10_000_000),
                "stats_interval_s": _number(0.1, 3600),
                "join_grace_ms": _integer(0, 60_000),
                "curve": _curve(base_dir),
            },
        ),
        metrics=metrics,
        http=http,
        workers=_dataclass_section(
            WorkersConfig,
            top.get("workers", {}),
            "workers",
            {
                "processes": _auto_or(_integer(1, 256)),
                "streams_per_process": _integer(1, 10_000),
                "gpu_restart_budget": _integer(0, 1000),
                "gpu_restart_window_s": _number(1, 86_400),
            },
        ),
        tracking=tracking,
        record=record,
        sinks=parse_sinks(top.get("sinks"), base_dir, curve="curve" in (top.get("publish") or {})),
        preview=_dataclass_section(
            PreviewConfig,
            top.get("preview", {}),
            "preview",
            {
                "fps": _number(0.1, 60),
                "max_width": _integer(16, 7680),
                "quality": _integer(10, 100),
            },
        ),
    )


def _parse_http(raw: Any, env: Any) -> HttpConfig:
    http = _dataclass_section(
        HttpConfig,
        raw,
        "http",
        {"host": _string, "port": _integer(0, 65535), "token": _optional(_token)},
    )
    if http.token is None and env.get(TOKEN_ENV):
        token = _token(env[TOKEN_ENV], f"${TOKEN_ENV}")
        http = HttpConfig(http.host, http.port, token)
    return http


def _token(value: Any, where: str) -> str:
    """A bearer token: printable, no spaces, long enough not to be guessed."""
    text = _string(value, where)
    if not re.fullmatch(r"[!-~]+", text):
        raise ConfigError(f"{where}: expected printable ASCII without spaces (a bearer token)")
    if len(text) < TOKEN_MIN_CHARS:
        raise ConfigError(
            f"{where}: {len(text)} characters is too short to keep the API safe; use at least "
            f"{TOKEN_MIN_CHARS} (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )
    return text


def _parse_streams(
    raw: Any,
    base_dir: Path,
    tracking_raw: dict[str, Any],
    top_tracking: TrackingConfig,
    record_raw: dict[str, Any] | None = None,
) -> tuple[StreamConfig, ...]:
    record_raw = {} if record_raw is None else record_raw
    top_record = _parse_record(record_raw, "record", base_dir)
    if raw is None:
        raise ConfigError("streams: missing; expected a list of {id, url} entries")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"streams: expected a non-empty list, got {_describe(raw)}")
    streams: list[StreamConfig] = []
    for index, item in enumerate(raw):
        streams.append(
            _parse_stream(
                item,
                f"streams[{index}]",
                base_dir,
                tracking_raw,
                top_tracking,
                streams,
                record_raw,
                top_record,
            )
        )
    return tuple(streams)


STREAM_FIELDS: dict[str, Validator] = {}  # filled below, once the validators exist


def _parse_stream(
    item: Any,
    where: str,
    base_dir: Path,
    tracking_raw: dict[str, Any],
    top_tracking: TrackingConfig,
    before: list[StreamConfig] | tuple[StreamConfig, ...],
    record_raw: dict[str, Any],
    top_record: RecordConfig,
) -> StreamConfig:
    """One ``streams:`` entry, after the ``before`` ones (ids must differ from theirs)."""
    stream = _dataclass_section(
        StreamConfig,
        item,
        where,
        {
            **STREAM_FIELDS,
            "tracking": _stream_tracking(tracking_raw),
            "record": _stream_record(record_raw, base_dir),
        },
        required=("id", "url"),
    )
    if any(s.id == stream.id for s in before):
        raise ConfigError(f"{where}.id: duplicate stream id {stream.id!r}; ids must be unique")
    url = _check_url(stream.url, f"{where}.url", base_dir)
    tracking = stream.tracking if "tracking" in item else top_tracking
    record = stream.record if "record" in item else top_record
    stream = StreamConfig(**{**stream.__dict__, "url": url, "tracking": tracking, "record": record})
    _check_analytics(stream, where)
    return stream


class DuplicateStream(ConfigError):
    """A stream entry whose id another stream already has (HTTP 409, not 422)."""


def add_stream(config: Config, raw: Any, base_dir: Path = Path(".")) -> Config:
    """``config`` with one more stream, ``raw`` being one ``streams:`` entry as in the file
    (``POST /api/streams``): checked by the same code, with the same messages, as if it were
    the file's last entry (``streams[N].url: file not found: ...``). ``${VAR}`` is not
    expanded: a client must not read the server's environment. Relative paths resolve from
    ``base_dir`` (the config file's directory)."""
    where = f"streams[{len(config.streams)}]"
    if isinstance(raw, dict) and any(s.id == raw.get("id") for s in config.streams):
        raise DuplicateStream(f"{where}.id: duplicate stream id {raw['id']!r}; ids must be unique")
    record_raw = {**asdict(config.record), "events": list(config.record.events)}
    stream = _parse_stream(
        raw,
        where,
        base_dir,
        asdict(config.tracking),
        config.tracking,
        config.streams,
        record_raw,
        config.record,
    )
    _check_analytics_classes_at([(where, stream)], config.model)
    return replace(config, streams=(*config.streams, stream))


PATCHABLE = ("fps", "zones", "lines")


def change_stream(config: Config, stream_id: str, raw: Any) -> Config:
    """``config`` with stream ``stream_id``'s ``fps``, ``zones`` or ``lines`` replaced by
    ``raw``'s (``PATCH /api/streams/{id}``), checked as the file's would be, under the
    stream's key path (``streams[1].zones[0].points: ...``). KeyError: no such stream."""
    index = next(i for i, s in enumerate(config.streams) if s.id == stream_id)
    where = f"streams[{index}]"
    changes = _mapping(raw, where)
    for key in changes:
        if key not in PATCHABLE:
            known = f"; expected one of {', '.join(PATCHABLE)}"
            if key in STREAM_FIELDS or key in ("tracking", "record"):
                raise ConfigError(
                    f"{where}.{key}: cannot change in place{known} (remove the stream and add "
                    "it again to change the rest)"
                )
            raise ConfigError(f"{where}.{key}: unknown key{known}")
    values = {key: STREAM_FIELDS[key](value, f"{where}.{key}") for key, value in changes.items()}
    stream = replace(config.streams[index], **values)
    _check_analytics(stream, where)
    _check_analytics_classes_at([(where, stream)], config.model)
    streams = list(config.streams)
    streams[index] = stream
    return replace(config, streams=tuple(streams))


def _parse_model(raw: Any, base_dir: Path) -> ModelConfig:
    model = _dataclass_section(
        ModelConfig,
        raw,
        "model",
        {
            "path": _string,
            "head": _choice(HEAD_FORMATS),
            "labels": _string,
            "conf_threshold": _number(0, 1),
            "iou_threshold": _number(0, 1),
            "max_detections": _integer(1, 10_000),
        },
    )
    path = model.path
    if not path.startswith("builtin:"):
        resolved = _resolve_path(path, base_dir)
        _check_file(resolved, "model.path", "expected an .onnx model file")
        path = str(resolved)
    elif path != BUILTIN_MODEL:
        raise ConfigError(f"model.path: unknown built-in model {path!r}; expected {BUILTIN_MODEL}")
    labels = model.labels
    if labels != "coco":
        resolved_labels = _resolve_path(labels, base_dir)
        _check_file(
            resolved_labels,
            "model.labels",
            "expected 'coco' or a text file with one label per line",
        )
        labels = str(resolved_labels)
    return ModelConfig(**{**model.__dict__, "path": path, "labels": labels})


def _parse_tracking(raw: Any, where: str) -> TrackingConfig:
    """A ``tracking`` section; scores must keep ByteTrack's order (low <= high)."""
    tracking = _dataclass_section(TrackingConfig, raw, where, TRACKING_FIELDS)
    if tracking.low_score > tracking.high_score:
        raise ConfigError(
            f"{where}.low_score: {tracking.low_score} exceeds {where}.high_score "
            f"({tracking.high_score}); boxes between the two only extend tracks"
        )
    return tracking


def _stream_tracking(top: dict[str, Any]) -> Validator:
    """``streams[i].tracking``: its keys over the top-level ``tracking`` section's."""

    def check(value: Any, where: str) -> TrackingConfig:
        own = _mapping({} if value is None else value, where)
        _reject_unknown(own, where, set(TRACKING_FIELDS))
        return _parse_tracking({**top, **own}, where)

    return check


RECORD_STREAM_FIELDS: dict[str, Validator] = {}  # filled below, after the validators
RECORD_TOP_ONLY = ("dir", "max_bytes", "queue_size")


def _parse_record(raw: Any, where: str, base_dir: Path) -> RecordConfig:
    """A ``record`` section; ``dir`` resolved from the config file's directory."""
    record = _dataclass_section(
        RecordConfig,
        raw,
        where,
        {
            **RECORD_STREAM_FIELDS,
            "dir": _string,
            "max_bytes": _integer(1 << 20, 1 << 50),
            "queue_size": _integer(1, 100_000),
        },
    )
    directory = _resolve_path(record.dir, base_dir)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(
            f"{where}.dir: {directory} is not a directory; snapshots and clips are written "
            "into a directory"
        )
    return RecordConfig(**{**record.__dict__, "dir": str(directory)})


def _stream_record(top: dict[str, Any], base_dir: Path) -> Validator:
    """``streams[i].record``: its keys over the top-level ``record`` section's (not ``dir``
    and ``max_bytes``: one directory and one cap for all streams)."""

    def check(value: Any, where: str) -> RecordConfig:
        own = _mapping({} if value is None else value, where)
        for key in RECORD_TOP_ONLY:
            if key in own:
                raise ConfigError(
                    f"{where}.{key}: set at the top level only (record.{key}): one directory, "
                    "one size cap and one writer hold every stream's snapshots and clips"
                )
        _reject_unknown(own, where, set(RECORD_STREAM_FIELDS))
        return _parse_record({**top, **own}, where, base_dir)

    return check


def _event_kinds(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"{where}: expected a non-empty list of event kinds ({', '.join(EVENT_KINDS)}), "
            f"got {_describe(value)}"
        )
    return tuple(_choice(EVENT_KINDS)(kind, f"{where}[{i}]") for i, kind in enumerate(value))


def _parse_engine(raw: Any) -> EngineOptions:
    options = _dataclass_section(
        EngineOptions,
        raw,
        "engine",
        {
            "backend": _choice(BACKENDS),
            "device": _device,
            "max_batch": _integer(1, 1024),
            "opt_batch": _optional(_integer(1, 1024)),
            "precision": _choice(PRECISIONS),
            "contexts": _integer(1, 16),
            "workspace_mb": _integer(16, 1 << 20),
            "builder_optimization_level": _integer(0, 5),
            "cache_dir": _string,
            "cuda_graphs": _boolean,
            "threads": _integer(0, 1024),
            "rewrite_fixed_batch": _boolean,
            "int8_method": _choice(INT8_METHODS),
            "calibration": _calibration,
            "calibration_frames": _integer(1, 100_000),
        },
    )
    if options.opt_batch is not None and options.opt_batch > options.max_batch:
        raise ConfigError(
            f"engine.opt_batch: {options.opt_batch} exceeds engine.max_batch ({options.max_batch})"
        )
    device, devices = options.device, ()
    if not isinstance(device, str) or device == "all":  # several GPUs: the engine's is the first
        if options.backend == "onnxruntime":
            raise ConfigError(
                "engine.device: a list of GPUs (or all) needs backend tensorrt or auto; "
                "ONNX Runtime runs on the CPU"
            )
        devices = device
        device = f"cuda:{device[0]}" if isinstance(device, tuple) else "cuda:0"
    return EngineOptions(
        **{
            **options.__dict__,
            "device": device,
            "devices": devices,
            "cache_dir": Path(str(options.cache_dir)).expanduser(),
        }
    )


def _calibration(value: Any, where: str) -> str:
    """``streams`` or a folder/file of images and videos (checked to exist when int8 builds)."""
    text = _string(value, where)
    return text if text == "streams" else str(Path(text).expanduser())


# --- field validators: each takes (value, key path) and returns the clean value ---------------

Validator = Callable[[Any, str], Any]


def _dataclass_section(
    cls, raw: Any, where: str, fields: dict[str, Validator], required: tuple[str, ...] = ()
):
    section = _mapping({} if raw is None else raw, where)
    _reject_unknown(section, where, set(fields))
    for key in required:
        if key not in section:
            raise ConfigError(f"{where}.{key}: missing (required)")
    values = {key: fields[key](value, f"{where}.{key}") for key, value in section.items()}
    return cls(**values)


def _mapping(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {_describe(raw)}")
    return raw


def _reject_unknown(section: dict[str, Any], where: str, known: set[str]) -> None:
    for key in section:
        if key not in known:
            prefix = f"{where}." if where else ""
            raise ConfigError(
                f"{prefix}{key}: unknown key; expected one of {', '.join(sorted(known))}"
            )


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if value is not None else "nothing"


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {_describe(value)}")
    return value


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {_describe(value)}")
    return value


def _number(low: float, high: float) -> Validator:
    def check(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {_describe(value)}")
        if not low <= value <= high:
            raise ConfigError(f"{where}: {value} is out of range [{low}, {high}]")
        return float(value)

    return check


def _integer(low: int, high: int) -> Validator:
    def check(value: Any, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {_describe(value)}")
        if not low <= value <= high:
            raise ConfigError(f"{where}: {value} is out of range [{low}, {high}]")
        return value

    return check


def _optional(inner: Validator) -> Validator:
    return lambda value, where: None if value is None else inner(value, where)


def _auto_or(inner: Validator) -> Validator:
    def check(value: Any, where: str) -> Any:
        if value == "auto":
            return "auto"
        if isinstance(value, str):
            raise ConfigError(f"{where}: expected 'auto' or a number, got {_describe(value)}")
        return inner(value, where)

    return check


def _choice(options: tuple[str, ...]) -> Validator:
    def check(value: Any, where: str) -> str:
        if value not in options:
            raise ConfigError(
                f"{where}: expected one of {', '.join(options)}, got {_describe(value)}"
            )
        return value

    return check


def _stream_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not STREAM_ID.match(value):
        raise ConfigError(
            f"{where}: expected 1-64 letters, digits, '_', '.' or '-', got {_describe(value)}"
        )
    return value


DEVICE_EXPECTED = "'cpu' or 'cuda:N' (or a GPU number N, a list of GPUs like [0, 1], or 'all')"


def _device(value: Any, where: str) -> str | tuple[int, ...]:
    """``engine.device``: one device (``cpu``, ``cuda:N``, ``N``), or the GPUs to spread the
    streams over (a list of ``N``/``cuda:N``, or ``all``); a list comes back as a tuple."""
    if value == "all":
        return "all"
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where}: expected at least one GPU in the list, got []")
        gpus = tuple(_gpu_ordinal(item, f"{where}[{i}]") for i, item in enumerate(value))
        for i, gpu in enumerate(gpus):
            if gpu in gpus[:i]:
                raise ConfigError(f"{where}[{i}]: GPU {gpu} is listed twice")
        return gpus
    if value == "cpu":
        return "cpu"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"cuda:{_gpu_ordinal(value, where)}"
    if not isinstance(value, str) or not re.fullmatch(r"cuda(:\d+)?", value):
        raise ConfigError(f"{where}: expected {DEVICE_EXPECTED}, got {_describe(value)}")
    return value if ":" in value else "cuda:0"


def _gpu_ordinal(value: Any, where: str) -> int:
    """A GPU of a list: ``N`` or ``cuda:N`` -> N."""
    if isinstance(value, str) and re.fullmatch(r"cuda:\d+", value):
        value = int(value.split(":", 1)[1])
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected a GPU number or 'cuda:N', got {_describe(value)}")
    if not 0 <= value <= 255:
        raise ConfigError(f"{where}: GPU {value} is out of range [0, 255]")
    return value


# --- zones and lines (streams[i].zones, streams[i].lines) -------------------------------------


def _zones(value: Any, where: str) -> tuple[ZoneConfig, ...]:
    return tuple(
        _dataclass_section(ZoneConfig, item, f"{where}[{k}]", ZONE_FIELDS, ("name", "points"))
        for k, item in enumerate(_list(value, where))
    )


def _lines(value: Any, where: str) -> tuple[LineConfig, ...]:
    return tuple(
        _dataclass_section(LineConfig, item, f"{where}[{k}]", LINE_FIELDS, ("name", "a", "b"))
        for k, item in enumerate(_list(value, where))
    )


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {_describe(value)}")
    return value


def _point(value: Any, where: str) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
    ):
        raise ConfigError(
            f"{where}: expected a point [x, y] of two numbers, got {_describe(value)}"
        )
    x, y = (float(v) for v in value)
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ConfigError(f"{where}: expected finite numbers, got {value!r}")
    return x, y


def _points(value: Any, where: str) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list of [x, y] points, got {_describe(value)}")
    points = tuple(_point(p, f"{where}[{i}]") for i, p in enumerate(value))
    if len(points) < 3:
        raise ConfigError(f"{where}: a zone needs at least 3 points, got {len(points)}")
    return points


def _class_names(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(
            f"{where}: expected a non-empty list of class names, got {_describe(value)}"
        )
    return tuple(_string(name, f"{where}[{i}]") for i, name in enumerate(value))


ZONE_FIELDS: dict[str, Validator] = {
    "name": _string,
    "points": _points,
    "classes": _optional(_class_names),
    "dwell_alert_s": _optional(_number(0.001, 86_400)),
    "units": _choice(UNITS),
}
LINE_FIELDS: dict[str, Validator] = {
    "name": _string,
    "a": _point,
    "b": _point,
    "classes": _optional(_class_names),
    "units": _choice(UNITS),
}


def _check_analytics(stream: StreamConfig, where: str) -> None:
    """One stream's zones and lines: tracking on, names unique, coordinates in their units,
    no self-intersecting polygon and no zero-length line (what the frame size cannot change;
    pixels beyond the frame are checked once the stream is live)."""
    if not (stream.zones or stream.lines):
        return
    key = "zones" if stream.zones else "lines"
    if not stream.tracking.enabled:
        raise ConfigError(
            f"{where}.{key}: zones and lines count tracked objects, and this stream's tracking "
            f"is off; set {where}.tracking.enabled: true (or tracking.enabled: true at the top "
            "level)"
        )
    from processors.analytics.geometry import GeometryError, Line, Zone

    names: dict[str, str] = {}
    items = [("zones", k, z, z.points) for k, z in enumerate(stream.zones)] + [
        ("lines", k, ln, (ln.a, ln.b)) for k, ln in enumerate(stream.lines)
    ]
    for kind, k, item, points in items:
        at = f"{where}.{kind}[{k}]"
        if item.name in names:
            raise ConfigError(
                f"{at}.name: {item.name!r} is also {names[item.name]}; zone and line names "
                "must be unique within a stream (events and counts are named by them)"
            )
        names[item.name] = at
        keys = (
            [f"{at}.points[{i}]" for i in range(len(points))]
            if kind == "zones"
            else [
                f"{at}.a",
                f"{at}.b",
            ]
        )
        for point_key, (x, y) in zip(keys, points):
            if item.units == "fraction" and not (0 <= x <= 1 and 0 <= y <= 1):
                raise ConfigError(
                    f"{point_key}: [{x:g}, {y:g}] is outside [0, 1] (units: fraction: "
                    "0..1 of the frame's width and height)"
                )
            if item.units == "pixels" and (x < 0 or y < 0):
                raise ConfigError(
                    f"{point_key}: [{x:g}, {y:g}] is negative; pixels count from the frame's "
                    "top left corner (0, 0)"
                )
        try:
            if kind == "zones":
                Zone(item.name, [list(p) for p in points])
            else:
                Line(item.name, list(item.a), list(item.b))
        except GeometryError as err:
            detail = str(err).split(": ", 1)[-1]
            raise ConfigError(f"{at}.{'points' if kind == 'zones' else 'b'}: {detail}") from err


def _check_analytics_classes(streams: tuple[StreamConfig, ...], model: ModelConfig) -> None:
    """Class names of zones and lines must be the model's labels (``model.labels``)."""
    _check_analytics_classes_at([(f"streams[{i}]", s) for i, s in enumerate(streams)], model)


def _check_analytics_classes_at(
    streams: list[tuple[str, StreamConfig]], model: ModelConfig
) -> None:
    wanted = [
        (f"{where}.{kind}[{k}].classes[{j}]", name)
        for where, stream in streams
        for kind, items in (("zones", stream.zones), ("lines", stream.lines))
        for k, item in enumerate(items)
        for j, name in enumerate(item.classes or ())
    ]
    if not wanted:
        return
    from processors.errors import ProcessorError
    from processors.labels import load_labels

    try:
        labels = load_labels(model.labels)
    except ProcessorError as err:
        raise ConfigError(str(err)) from err
    check_class_names(wanted, labels, model.labels)


def check_class_names(wanted: list[tuple[str, str]], labels: tuple[str, ...], spec: str) -> None:
    """ConfigError for the first (key path, name) whose name is not one of ``labels``; the
    pipeline runs the same check against the labels it loaded."""
    known = set(labels)
    for where, name in wanted:
        if name not in known:
            source = "COCO-80 (model.labels: coco)" if spec == "coco" else f"model.labels ({spec})"
            close = difflib.get_close_matches(name, labels, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{where}: unknown class {name!r}; expected a label of {source}{hint}"
            )


RECORD_STREAM_FIELDS.update(
    {
        "enabled": _boolean,
        "pre_s": _number(0, 300),
        "post_s": _number(0, 300),
        "snapshots": _boolean,
        "clips": _boolean,
        "events": _event_kinds,
        "buffer_bytes": _integer(1 << 16, 1 << 34),
    }
)

STREAM_FIELDS.update(
    {
        "id": _stream_id,
        "url": _string,
        "loop": _boolean,
        "fps": _optional(_number(0.01, 1000)),
        "decoder": _choice(DECODERS),
        "pace": _choice(PACES),
        "zones": _zones,
        "lines": _lines,
    }
)

TRACKING_FIELDS: dict[str, Validator] = {
    "enabled": _boolean,
    "high_score": _number(0, 1),
    "low_score": _number(0, 1),
    "new_track_score": _number(0, 1),
    "confirm_hits": _integer(1, 1000),
    "max_lost_s": _number(0, 3600),
}

HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?$")
IPC_PATH_MAX = 107  # sun_path is 108 bytes on Linux, NUL included


def _endpoint(value: Any, where: str) -> str:
    """A ZeroMQ endpoint the publisher can bind and subscribers can reach, checked here so
    a typo fails before the engine loads."""
    text = _string(value, where)
    if text.startswith("inproc://"):
        raise ConfigError(
            f"{where}: inproc:// endpoints live inside one process, so no subscriber "
            f"could ever connect to {text!r}; use tcp://HOST:PORT or ipc:///path/to/sock"
        )
    if text.startswith("ipc://"):
        return _ipc_endpoint(text, where)
    match = re.fullmatch(r"tcp://([^:/\s]+):([^:/\s]+)", text)
    if not match:
        raise ConfigError(
            f"{where}: expected a ZeroMQ endpoint like tcp://127.0.0.1:5555 or "
            f"ipc:///tmp/streams.sock, got {text!r}"
        )
    host, port = match.groups()
    if port != "*":
        if not port.isdigit():
            raise ConfigError(f"{where}: {text!r}: port {port!r} is not a number or '*'")
        if not 1 <= int(port) <= 65535:
            raise ConfigError(f"{where}: {text!r}: port {port} is out of range 1..65535")
    if host == "*":
        return text
    if re.fullmatch(r"[\d.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError as err:
            raise ConfigError(f"{where}: {text!r}: {host!r} is not a valid IP address") from err
        return text
    if not HOST_NAME.match(host):
        raise ConfigError(
            f"{where}: {text!r}: {host!r} is not an IP address, '*' or a host name "
            "(letters, digits, '-' and '.')"
        )
    return text


def check_endpoint(value: Any, where: str) -> str:
    """A ZeroMQ endpoint as ``publish.endpoint`` takes it (ConfigError naming ``where``)."""
    return _endpoint(value, where)


def _ipc_endpoint(text: str, where: str) -> str:
    path = text[len("ipc://") :]
    if not path:
        raise ConfigError(f"{where}: {text!r} has no path; expected ipc:///path/to/sock")
    if path.startswith("@"):  # Linux abstract namespace: no file, no directory
        return text
    if len(path.encode()) > IPC_PATH_MAX:
        raise ConfigError(
            f"{where}: {text!r}: the socket path is longer than {IPC_PATH_MAX} bytes, "
            "the most a Unix socket allows"
        )
    directory = Path(path).expanduser().parent
    if not directory.is_dir():
        raise ConfigError(
            f"{where}: {text!r}: directory {directory} does not exist; "
            "create it or choose a socket path in an existing directory"
        )
    return text


def _curve(base_dir: Path) -> Validator:
    def check(value: Any, where: str) -> CurveConfig | None:
        if value is None:
            return None
        curve = _dataclass_section(
            CurveConfig,
            value,
            where,
            {
                "server_secret_key": _string,
                "authorized_clients": _string,
            },
            required=("server_secret_key", "authorized_clients"),
        )
        secret = _resolve_path(curve.server_secret_key, base_dir)
        clients = _resolve_path(curve.authorized_clients, base_dir)
        if not secret.is_file():
            raise ConfigError(
                f"{where}.server_secret_key: file not found: {secret} "
                "(create one with `python -m streams keys DIR`)"
            )
        if not clients.is_dir():
            raise ConfigError(
                f"{where}.authorized_clients: not a directory: {clients}; "
                "expected a directory of client public .key files"
            )
        return CurveConfig(str(secret), str(clients))

    return check


# --- sinks (bridges to MQTT, Redis Streams, NATS JetStream) ------------------------------------


def parse_sinks(raw: Any, base_dir: Path, curve: bool = False) -> tuple[SinkConfig, ...]:
    """The ``sinks`` list; each entry's keys are its ``type``'s (SINK_FIELDS)."""
    items = _list(raw, "sinks")
    if items and curve:
        raise ConfigError(
            "sinks: publish.curve is set, and the bridges subscribe without CURVE keys; "
            "run them apart with `streams bridge` next to a plain endpoint, or turn curve off"
        )
    types = [item.get("type") if isinstance(item, dict) else None for item in items]
    sinks: list[SinkConfig] = []
    seen: dict[str, str] = {}
    for index, item in enumerate(items):
        where = f"sinks[{index}]"
        section = _mapping(item, where)
        if "type" not in section:
            raise ConfigError(
                f"{where}.type: missing (required); expected one of mqtt, redis, nats"
            )
        kind = _choice(SINK_TYPES)(section["type"], f"{where}.type")
        fields = {key: SINK_FIELDS[key] for key in SINK_KEYS[kind]}
        if kind == "mqtt":
            fields["prefix"] = _sink_prefix  # topic levels: home/streams
        default_name = kind if types.count(kind) == 1 else f"{kind}-{index}"
        sink = _dataclass_section(
            SinkConfig,
            {"name": default_name, **section},
            where,
            fields,
            required=("type", "url"),
        )
        if sink.name in seen:
            raise ConfigError(f"{where}.name: {sink.name!r} is also {seen[sink.name]}'s name")
        seen[sink.name] = where
        _check_sink(sink, where, base_dir)
        files = {
            key: str(_resolve_path(getattr(sink, key), base_dir))
            for key in ("ca_file", "cert_file", "key_file")
            if getattr(sink, key) is not None
        }
        sinks.append(SinkConfig(**{**sink.__dict__, **files}))
    return tuple(sinks)


def sinks_from_urls(urls: list[str]) -> tuple[SinkConfig, ...]:
    """``streams bridge --sink URL ...``: a sink of each URL's scheme with every default."""
    from streams.redact import redact_url

    raw = []
    for url in urls:
        scheme = urlsplit(url).scheme.lower()
        kind = next((k for k, schemes in SINK_SCHEMES.items() if scheme in schemes), None)
        if kind is None:
            schemes = ", ".join(f"{s}://" for group in SINK_SCHEMES.values() for s in group)
            raise ConfigError(f"{redact_url(url)!r}: expected a URL starting {schemes}")
        raw.append({"type": kind, "url": url})
    return parse_sinks(raw, Path("."))


def _check_sink(sink: SinkConfig, where: str, base_dir: Path) -> None:
    from streams.redact import redact_url

    parts = urlsplit(sink.url)
    shown = redact_url(sink.url)
    schemes = SINK_SCHEMES[sink.type]
    if parts.scheme.lower() not in schemes:
        raise ConfigError(
            f"{where}.url: {shown!r}: type {sink.type} takes "
            f"{' or '.join(f'{s}://HOST:PORT' for s in schemes)}"
        )
    if not parts.hostname:
        raise ConfigError(f"{where}.url: {shown!r} has no host; expected {schemes[0]}://HOST:PORT")
    try:
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise ConfigError(f"{where}.url: {shown!r} has a bad port (1..65535)") from None
    path = parts.path.strip("/")
    if sink.type == "redis" and path and not path.isdigit():
        raise ConfigError(f"{where}.url: {shown!r}: the path is the database number, e.g. /0")
    if sink.type != "redis" and path:
        raise ConfigError(f"{where}.url: {shown!r}: expected no path after HOST:PORT")
    if sink.reconnect_initial_s > sink.reconnect_max_s:
        raise ConfigError(
            f"{where}.reconnect_initial_s: {sink.reconnect_initial_s} exceeds "
            f"{where}.reconnect_max_s ({sink.reconnect_max_s})"
        )
    for key in ("ca_file", "cert_file", "key_file"):
        if getattr(sink, key) is not None:
            _check_file(_resolve_path(getattr(sink, key), base_dir), f"{where}.{key}", "a PEM file")
    if (sink.cert_file is None) != (sink.key_file is None):
        raise ConfigError(f"{where}.cert_file: a client certificate needs key_file too")


def _sink_prefix(value: Any, where: str) -> str:
    """Words of letters, digits, ``_`` and ``-``, joined by ``/`` (MQTT topic levels)."""
    text = _string(value, where)
    if not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", text):
        raise ConfigError(
            f"{where}: expected letters, digits, '_' or '-' (MQTT: words joined by '/'), "
            f"got {text!r}"
        )
    return text


def _plain_prefix(value: Any, where: str) -> str:
    text = _sink_prefix(value, where)
    if "/" in text:
        raise ConfigError(f"{where}: {text!r}: '/' separates MQTT topic levels only")
    return text


def _kind_names(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of message kinds, e.g. [det, event]")
    for i, name in enumerate(value):
        if not isinstance(name, str) or not KIND_NAME.match(name):
            raise ConfigError(
                f"{where}[{i}]: expected a message kind (det, status, event, stats, ...), "
                f"got {_describe(name)}"
            )
    return tuple(value)


def _per_kind(inner: Validator) -> Validator:
    def check(value: Any, where: str) -> tuple:
        section = _mapping({} if value is None else value, where)
        for key in section:
            if not isinstance(key, str) or not KIND_NAME.match(key):
                raise ConfigError(f"{where}.{key}: expected a message kind (det, status, ...)")
        return tuple((key, inner(item, f"{where}.{key}")) for key, item in section.items())

    return check


def _jetstream_name(value: Any, where: str) -> str | None:
    if value is None:
        return None
    text = _string(value, where)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise ConfigError(f"{where}: expected 1-64 letters, digits, '_' or '-', got {text!r}")
    return text


def _sink_name(value: Any, where: str) -> str:
    text = _string(value, where)
    if not STREAM_ID.match(text):
        raise ConfigError(f"{where}: expected 1-64 letters, digits, '_', '.' or '-', got {text!r}")
    return text


SINK_FIELDS: dict[str, Validator] = {
    "type": _choice(SINK_TYPES),
    "url": _string,
    "name": _sink_name,
    "prefix": _plain_prefix,
    "kinds": _kind_names,
    "queue_size": _integer(1, 10_000_000),
    "reconnect_initial_s": _number(0.01, 600),
    "reconnect_max_s": _number(0.01, 3600),
    "username": _optional(_string),
    "password": _optional(_string),
    "ca_file": _optional(_string),
    "cert_file": _optional(_string),
    "key_file": _optional(_string),
    "qos": _per_kind(_integer(0, 2)),
    "retain": _per_kind(_boolean),
    "client_id": _optional(_string),
    "keepalive_s": _integer(5, 3600),
    "discovery": _boolean,
    "discovery_prefix": _sink_prefix,
    "maxlen": _integer(1, 1_000_000_000),
    "stream": _jetstream_name,
    "max_age_s": _number(0, 10 * 365 * 86_400),
    "max_msgs_per_subject": _integer(-1, 1_000_000_000),
    "storage": _choice(NATS_STORAGE),
}
_SINK_COMMON = (
    "type name url prefix kinds queue_size reconnect_initial_s reconnect_max_s username "
    "password ca_file cert_file key_file"
).split()
SINK_KEYS: dict[str, tuple[str, ...]] = {
    "mqtt": (
        *_SINK_COMMON,
        *"qos retain client_id keepalive_s discovery discovery_prefix".split(),
    ),
    "redis": (*_SINK_COMMON, "maxlen"),
    "nats": (*_SINK_COMMON, *"stream max_age_s max_msgs_per_subject storage".split()),
}


# --- URLs and paths -----------------------------------------------------------------------------


def _is_network_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in NETWORK_SCHEMES


def _resolve_path(path: str, base_dir: Path) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (base_dir / candidate).resolve()


def _check_url(url: str, where: str, base_dir: Path) -> str:
    """Accept a network URL with a host, ``sample:NAME``, or an existing local file."""
    from streams.redact import redact_url

    if url.startswith("sample:"):
        if url[len("sample:") :] not in SAMPLE_VIDEOS:
            raise ConfigError(
                f"{where}: unknown sample {url!r}; expected one of "
                + ", ".join(f"sample:{name}" for name in SAMPLE_VIDEOS)
            )
        return url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in NETWORK_SCHEMES:
        if not parts.hostname:
            raise ConfigError(
                f"{where}: {redact_url(url)!r} has no host; "
                f"expected e.g. rtsp://camera.local:554/stream"
            )
        try:
            parts.port  # noqa: B018  (raises ValueError on a bad port)
        except ValueError as err:
            raise ConfigError(f"{where}: {redact_url(url)!r} has a bad port") from err
        return url
    if scheme == "file":
        url = parts.path
    elif scheme and len(scheme) > 1:
        raise ConfigError(
            f"{where}: unsupported URL scheme {scheme!r}; expected a file path, "
            f"sample:NAME or one of {', '.join(NETWORK_SCHEMES)}"
        )
    path = _resolve_path(url, base_dir)
    _check_file(path, where, "expected a video file")
    return str(path)


def _check_file(path: Path, where: str, expected: str) -> None:
    if path.is_dir():
        raise ConfigError(f"{where}: {path} is a directory; {expected}")
    if not path.is_file():
        raise ConfigError(f"{where}: file not found: {path}; {expected}")


def _interpolate(value: Any, where: str, env: dict[str, str]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string, recursively."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{where or 'config'}: environment variable ${{{name}}} is not set")

        return ENV_REF.sub(substitute, value)
    if isinstance(value, list):
        return [_interpolate(item, f"{where}[{i}]", env) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            key: _interpolate(item, f"{where}.{key}" if where else str(key), env)
            for key, item in value.items()
        }
    return value
