"""``python -m streams subscribe``: print what one or more publishers send, one line each.

Four things a plain SUB loop gets wrong for a person reading a terminal:

* ``stats`` messages are pipeline-wide (one message lists every stream), so with ``--stream``
  only that stream's entry is printed (with the pipeline's figures under ``--json``);
* a ``--stream`` id that matches nothing prints nothing, for ever: after ``HINT_AFTER_S`` with
  no message for it, while the publishers' ``stats`` name other streams, the ids seen are
  named once on stderr (which is why ``--stream`` always listens to ``stats``);
* with several endpoints (the nodes of a cluster), each node's ``stats`` lists only its
  own streams: the lines printed merge them (``MergedStats``), and a node that goes quiet
  is named on stderr (``SilentPublishers``);
* gaps in ``seq`` are expected under ``pace: realtime`` or overload (each stream keeps only its
  newest frame): hundreds a minute. They are summed per stream and printed every
  ``--gap-interval`` seconds; ``--gaps`` prints each one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from streams.cli.usage import UsageError

if TYPE_CHECKING:
    from streams.cli.main import _Signals

HINT_AFTER_S = 3.0  # how long an unknown --stream id waits before the hint
SILENT_AFTER_S = 5.0  # several endpoints: one that sends nothing this long is named
POLL_S = 0.2


class GapCounter:
    """Frames missing between a stream's consecutive ``det`` seq numbers: each gap as it
    happens (``each``), or their sum per stream every ``interval_s``."""

    def __init__(
        self,
        interval_s: float,
        each: bool,
        out: IO[str] = sys.stderr,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval_s = interval_s
        self._each = each
        self._out = out
        self._clock = clock
        self._last_seq: dict[str, int] = {}
        self._missing: dict[str, int] = {}  # per stream, since the window began
        self._window_began_s = clock()

    def seen(self, stream: str, seq: int) -> None:
        previous = self._last_seq.get(stream)
        self._last_seq[stream] = seq
        if previous is None or seq <= previous + 1:
            return
        missing = seq - previous - 1
        if self._each:
            self._print(f"GAP {stream}: {missing} frames missing (seq {previous} -> {seq})")
        else:
            self._missing[stream] = self._missing.get(stream, 0) + missing

    def tick(self) -> None:
        """Print the window's sums once ``interval_s`` has passed."""
        if self._clock() - self._window_began_s >= self._interval_s:
            self.flush()

    def flush(self) -> None:
        """Print the sums of the window so far (also at exit) and start a new window."""
        now_s = self._clock()
        window_s = now_s - self._window_began_s
        for stream, missing in self._missing.items():
            self._print(
                f"{stream}: {missing} frames dropped in the last {round(window_s, 1):g} s "
                "(latest-frame replacement; --gaps lists each gap)"
            )
        self._missing.clear()
        self._window_began_s = now_s

    def _print(self, line: str) -> None:
        print(line, file=self._out, flush=True)


class StreamHint:
    """Names the stream ids seen, once, when ``stream`` has sent nothing for ``after_s``."""

    def __init__(
        self, stream: str | None, after_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self._after_s = after_s
        self._deadline_s = clock() + after_s
        self._clock = clock
        self._seen: set[str] = set()
        self._done = stream is None

    def note(self, message: dict) -> None:
        ids = [s["stream"] for s in message.get("streams", [])] + [message.get("stream")]
        self._seen.update(i for i in ids if isinstance(i, str))
        if self._stream in self._seen:
            self._done = True

    def due(self) -> str | None:
        """The hint, the one time it is due; None otherwise."""
        if self._done or not self._seen or self._clock() < self._deadline_s:
            return None
        self._done = True
        return (
            f"subscribe: no message for stream {self._stream!r} after {self._after_s:g} s; "
            f"streams seen: {', '.join(sorted(self._seen))} (ids match exactly)"
        )


class MergedStats:
    """With several publishers (the nodes of a cluster, each sending ``stats`` for its own
    streams), one ``stats`` view of them all: each publisher's latest, streams in the order
    the endpoints were given, a publisher silent for ``stale_s`` left out. Shown at most
    every ``every_s``, so four nodes make one line a second, not four."""

    def __init__(
        self,
        endpoints: list[str],
        every_s: float = 1.0,
        stale_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._endpoints = endpoints
        self._every_s = every_s
        self._stale_s = stale_s
        self._clock = clock
        self._latest: dict[str, tuple[float, dict]] = {}
        self._shown_s = -float("inf")

    def note(self, endpoint: str, message: dict) -> dict | None:
        """Take one publisher's ``stats``; the merged message when one is due, else None."""
        now_s = self._clock()
        self._latest[endpoint] = (now_s, message)
        if now_s - self._shown_s < self._every_s:
            return None
        self._shown_s = now_s
        return self.merged()

    def merged(self) -> dict:
        now_s = self._clock()
        fresh = [
            self._latest[e][1]
            for e in self._endpoints
            if e in self._latest and now_s - self._latest[e][0] <= self._stale_s
        ]
        return {
            "v": 1,
            "type": "stats",
            "time": max(m.get("time", 0.0) for m in fresh),
            "streams": [row for m in fresh for row in m.get("streams", [])],
            "publishers": (len(fresh), len(self._endpoints)),
        }


class SilentPublishers:
    """Names, once each time, a publisher that has sent nothing for ``after_s`` (a node that
    is down, or a wrong address), and says when it sends again."""

    def __init__(
        self, endpoints: list[str], after_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._after_s = after_s
        self._clock = clock
        began = clock()
        self._last_s = {e: began for e in endpoints}
        self._heard: set[str] = set()
        self._silent: set[str] = set()

    def note(self, endpoint: str) -> str | None:
        self._last_s[endpoint] = self._clock()
        self._heard.add(endpoint)
        if endpoint in self._silent:
            self._silent.discard(endpoint)
            return f"subscribe: {endpoint} is sending again"
        return None

    def due(self) -> list[str]:
        now_s = self._clock()
        lines = []
        for endpoint, last_s in self._last_s.items():
            if endpoint in self._silent or now_s - last_s < self._after_s:
                continue
            self._silent.add(endpoint)
            what = "nothing more" if endpoint in self._heard else "nothing yet"
            lines.append(
                f"subscribe: {what} from {endpoint} for {self._after_s:g} s (a node down or "
                "restarting, or no publisher at that address); the others carry on"
            )
        return lines


def curve_keys(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The ``--server-key`` and ``--client-key`` files, each checked (UsageError naming the
    argument and the file: missing, a directory, not a CURVE key, no secret key)."""
    from streams.bus.subscriber import load_curve_key

    server, client = args.server_key, args.client_key
    if bool(server) != bool(client):
        given, missing = ("--server-key", "--client-key")[:: 1 if server else -1]
        raise UsageError(missing, f"CURVE needs it too: {given} was given")
    for argument, path, secret in (
        ("--server-key", server, False),
        ("--client-key", client, True),
    ):
        if path:
            try:
                load_curve_key(path, secret=secret)
            except ValueError as err:
                raise UsageError(argument, str(err)) from None
    return server, client


def run_subscribe(args: argparse.Namespace, signals: _Signals) -> int:
    import zmq

    from streams.bus.messages import SchemaError, validate
    from streams.bus.subscriber import MergedSubscriber

    server_key, client_key = curve_keys(args)
    kinds = list(args.kinds)
    listen = kinds + (["stats"] if args.stream and "stats" not in kinds else [])  # the hint
    try:
        subscriber = MergedSubscriber(
            args.endpoints,
            stream=args.stream,
            kinds=listen,
            curve_server_key=server_key,
            curve_client_key=client_key,
        )
    except zmq.ZMQError as err:  # connect() refuses what is not an endpoint
        bad = ", ".join(e for e in args.endpoints if not _is_endpoint(e)) or " ".join(
            args.endpoints
        )
        raise UsageError(
            "endpoints", f"{bad}: {err} (expected e.g. tcp://127.0.0.1:5555)"
        ) from None
    gaps = GapCounter(args.gap_interval, each=args.gaps)
    hint = StreamHint(args.stream, HINT_AFTER_S)
    several = len(subscriber.endpoints) > 1
    # Several publishers, for a person: one merged stats line; --json keeps each message.
    merged = MergedStats(subscriber.endpoints) if several and not args.json else None
    silent = SilentPublishers(subscriber.endpoints, SILENT_AFTER_S) if several else None
    printed = 0
    last_printed_s = time.monotonic()
    with subscriber as sub:
        while not signals.stop.is_set():
            item = sub.receive(POLL_S)
            gaps.tick()
            for line in silent.due() if silent else ():
                print(line, file=sys.stderr, flush=True)
            if item is not None:
                endpoint, topic_bytes, message = item
                hint.note(message)
                if silent and (line := silent.note(endpoint)):
                    print(line, file=sys.stderr, flush=True)
                if args.validate:
                    try:
                        validate(topic_bytes, message)
                    except SchemaError as err:
                        print(f"INVALID {topic_bytes.decode()}: {err}", file=sys.stderr)
                if merged is not None and message.get("type") == "stats":
                    message = merged.note(endpoint, message)
                shown = None if message is None else _shown(message, args.stream, kinds)
                if shown is not None:
                    if shown.get("type") == "det":
                        gaps.seen(shown["stream"], shown["seq"])
                    print(json.dumps(shown) if args.json else describe(shown), flush=True)
                    printed += 1
                    last_printed_s = time.monotonic()
                    if args.count is not None and printed >= args.count:
                        break
            if (line := hint.due()) is not None:
                print(line, file=sys.stderr, flush=True)
            if args.timeout is not None and time.monotonic() - last_printed_s >= args.timeout:
                break
    gaps.flush()
    return 0


def _shown(message: dict, stream: str | None, kinds: list[str]) -> dict | None:
    """What of ``message`` to print: None for a kind not asked for, or stats without
    ``stream``; stats keep only ``stream``'s entry."""
    kind = message.get("type")
    if kind not in kinds:
        return None
    if kind != "stats" or stream is None:
        return message
    entries = [s for s in message.get("streams", []) if s.get("stream") == stream]
    return {**message, "streams": entries} if entries else None


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


def describe(message: dict) -> str:
    """One line for a person."""
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
    if kind == "event":
        where = f"line {message['line']}" if "line" in message else f"zone {message['zone']}"
        extra = f" {message['direction']}" if "direction" in message else ""
        if "dwell_s" in message:
            extra += f" after {message['dwell_s']:.1f} s"
        return (
            f"event {message['stream']} #{message['seq']} pts {message['pts']:.2f}s: "
            f"{message['class']} {message['track_id']} {message['event']} {where}{extra}"
        )
    if kind in ("snapshot", "clip"):
        span = (
            f"pts {message['pts']:.2f}s"
            if kind == "snapshot"
            else f"{message['start']:.2f}-{message['end']:.2f}s"
        )
        why = ", ".join(
            f"{e['event']} {e.get('zone') or e.get('line')} #{e['track_id']}"
            for e in message["events"]
        )
        return f"{kind} {message['stream']} {span} ({why or 'on request'}): {message['path']}"
    streams = ", ".join(f"{s['stream']} {s['fps']} fps" for s in message.get("streams", []))
    if "publishers" in message:  # merged over several endpoints (MergedStats)
        heard, of = message["publishers"]
        return f"stats ({len(message['streams'])} streams, {heard}/{of} publishers): {streams}"
    return f"stats: {streams}"
