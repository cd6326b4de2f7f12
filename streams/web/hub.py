"""The browser view's hub, in the main process: every stream's state and figures, and the
pictures of the streams somebody watches.

Why a hub: many browser tabs may watch one stream, and the pipeline must make its pictures
once, and only while somebody watches. The hub holds one SUB socket on the bus (one or more
endpoints: several nodes may be merged), always subscribed to ``status/`` and ``stats/``,
and to ``preview/<id>/`` only while at least one viewer watches that stream; the last viewer
leaving unsubscribes, and the pipeline (its XPUB sees it) stops encoding.

One thread owns the socket (ZeroMQ sockets are not thread-safe); watch and unwatch calls
from other threads (the web server's) are queued to it. Viewers get pictures through a
callback, called on the hub's thread: it must be quick (hand the picture over, return).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import zmq

from streams.bus.messages import decode, decode_preview, preview_topic

logger = logging.getLogger(__name__)

POLL_MS = 50
Viewer = Callable[[str, dict, bytes], None]  # (stream id, preview header, JPEG)


def local_endpoint(bound: str) -> str:
    """Where a hub in the publishing process connects to ``publish.endpoint``: a wildcard bind
    (``tcp://*:5555``, ``tcp://0.0.0.0:5555``, ``tcp://[::]:5555``) becomes loopback."""
    for wildcard, loopback in (("*", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("[::]", "[::1]")):
        prefix = f"tcp://{wildcard}:"
        if bound.startswith(prefix):
            return f"tcp://{loopback}:" + bound[len(prefix) :]
    return bound


@dataclass
class StreamView:
    """What the page shows of one stream."""

    stream: str
    state: str = "unknown"
    reason: str | None = None
    fps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    dropped: int = 0
    processed: int = 0
    width: int | None = None
    height: int | None = None
    updated: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "state": self.state,
            "reason": self.reason,
            "fps": self.fps,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "dropped": self.dropped,
            "processed": self.processed,
            "width": self.width,
            "height": self.height,
        }


class Hub:
    """Subscribes to ``endpoints`` (a list: one node or several) and keeps the view.

    Example:
        hub = Hub(["tcp://127.0.0.1:5555"]); hub.start()
        token = hub.watch("cam1", lambda stream, header, jpeg: ...)
        ...
        hub.unwatch(token); hub.close()
    """

    def __init__(
        self,
        endpoints: Iterable[str],
        *,
        curve_server_key: str | None = None,
        curve_client_key: str | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        if not self.endpoints:
            raise ValueError("the hub needs at least one endpoint to subscribe to")
        self._context = context or zmq.Context.instance()
        self._curve = (curve_server_key, curve_client_key)
        self._lock = threading.Lock()  # guards views, viewers, latest
        self._views: dict[str, StreamView] = {}
        self._viewers: dict[str, dict[int, Viewer]] = {}  # stream -> token -> callback
        self._latest: dict[str, tuple[dict, bytes]] = {}  # stream -> newest picture
        self._tokens = 0
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        # Set first thing in close(): the web routes end their open picture responses on it,
        # so that a server stopped after the hub need not cut them off.
        self.closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="view-hub", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.pictures = 0  # preview messages received (tests read it)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Hub:
        self._thread.start()
        self._ready.wait(5.0)
        if self._error is not None:
            raise self._error
        return self

    def close(self) -> None:
        self.closing.set()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def __enter__(self) -> Hub:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what the page asks -------------------------------------------------------------------

    def streams(self) -> list[dict[str, Any]]:
        """Every stream seen, in the order first seen, with its state and figures."""
        with self._lock:
            return [view.as_dict() for view in self._views.values()]

    def latest(self, stream_id: str) -> tuple[dict, bytes] | None:
        """The newest picture of a watched stream, if one came."""
        with self._lock:
            return self._latest.get(stream_id)

    def watched(self) -> dict[str, int]:
        """Stream id -> how many viewers watch it."""
        with self._lock:
            return {s: len(v) for s, v in self._viewers.items() if v}

    def watch(self, stream_id: str, viewer: Viewer) -> int:
        """Start giving ``viewer`` the stream's pictures; the first viewer of a stream makes
        the hub subscribe to its ``preview/<id>/``. Returns a token for ``unwatch``."""
        preview_topic(stream_id)  # ValueError for an empty id
        with self._lock:
            self._tokens += 1
            token = self._tokens
            viewers = self._viewers.setdefault(stream_id, {})
            first = not viewers
            viewers[token] = viewer
        if first:
            self._commands.put((zmq.SUBSCRIBE, stream_id))
        return token

    def unwatch(self, token: int) -> None:
        """Stop one viewer; the last viewer of a stream leaving unsubscribes its pictures."""
        with self._lock:
            for stream_id, viewers in self._viewers.items():
                if viewers.pop(token, None) is not None:
                    last = not viewers
                    if last:
                        del self._viewers[stream_id]
                        self._latest.pop(stream_id, None)
                    break
            else:
                return
        if last:
            self._commands.put((zmq.UNSUBSCRIBE, stream_id))

    # --- the socket's thread ------------------------------------------------------------------

    def _socket(self) -> zmq.Socket:
        sock = self._context.socket(zmq.SUB)
        server_key, client_key = self._curve
        if server_key or client_key:
            from streams.bus.subscriber import load_curve_key

            if not (server_key and client_key):
                raise ValueError("CURVE needs the server's public key and the client's secret key")
            sock.curve_serverkey = load_curve_key(server_key)[0]
            public, secret = load_curve_key(client_key, secret=True)
            sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.setsockopt(zmq.RCVHWM, 1000)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.SUBSCRIBE, b"status/")
        sock.setsockopt(zmq.SUBSCRIBE, b"stats/")
        for endpoint in self.endpoints:
            sock.connect(endpoint)
        return sock

    def _run(self) -> None:
        try:
            sock = self._socket()
        except Exception as err:  # a bad endpoint or key: said by start()
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                self._apply_commands(sock)
                if not sock.poll(POLL_MS):
                    continue
                for _ in range(1000):  # drain what is there, then look at commands again
                    try:
                        topic, payload = sock.recv_multipart(zmq.NOBLOCK)[:2]
                    except zmq.Again:
                        break
                    except ValueError:
                        continue  # a one-part message: not ours
                    try:
                        self._on_message(topic, payload)
                    except Exception as err:  # one bad message, not the view
                        logger.debug("view hub: message on %r ignored: %s", topic[:64], err)
        finally:
            sock.close(0)

    def _apply_commands(self, sock: zmq.Socket) -> None:
        while True:
            try:
                option, stream_id = self._commands.get_nowait()
            except queue.Empty:
                return
            sock.setsockopt(option, preview_topic(stream_id).encode())

    def _on_message(self, topic: bytes, payload: bytes) -> None:
        if topic.startswith(b"preview/"):
            self._on_picture(payload)
        elif topic.startswith(b"status/"):
            message = decode(payload)
            with self._lock:
                view = self._view(message["stream"])
                view.state = message["state"]
                view.reason = message.get("reason")
                view.width = message.get("width", view.width)
                view.height = message.get("height", view.height)
                view.updated = time.time()
        elif topic.startswith(b"stats/"):
            message = decode(payload)
            with self._lock:
                for entry in message.get("streams", ()):
                    view = self._view(entry["stream"])
                    view.state = entry.get("state", view.state)
                    view.fps = entry.get("fps", 0.0)
                    view.p50_ms = entry.get("p50_ms")
                    view.p99_ms = entry.get("p99_ms")
                    view.dropped = entry.get("dropped", 0)
                    view.processed = entry.get("processed", 0)
                    view.updated = time.time()

    def _on_picture(self, payload: bytes) -> None:
        header, jpeg = decode_preview(payload)
        stream_id = header["stream"]
        with self._lock:
            viewers = list(self._viewers.get(stream_id, {}).values())
            if not viewers:
                return  # unsubscribed a moment ago
            self._latest[stream_id] = (header, jpeg)
            view = self._view(stream_id)
            view.width, view.height = header.get("width"), header.get("height")
        self.pictures += 1
        for viewer in viewers:
            try:
                viewer(stream_id, header, jpeg)
            except Exception:
                logger.exception("view hub: a viewer of stream %s failed", stream_id)

    def _view(self, stream_id: str) -> StreamView:
        view = self._views.get(stream_id)
        if view is None:
            view = self._views[stream_id] = StreamView(stream_id)
        return view
