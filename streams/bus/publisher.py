"""ZeroMQ PUB publisher that never blocks the pipeline.

Producers (the pipeline, capture workers) hand encoded messages to a bounded queue without
waiting: the completer a whole batch's as one item, others one message at a time (encoded in
their own thread). One thread owns the socket (ZeroMQ sockets are not thread-safe) and sends.
Messages beyond the queue's size are dropped and counted; a slow subscriber is cut off by
ZeroMQ's high-water mark per subscriber, so it never slows the others.

The socket is an XPUB, not a PUB: it sends exactly as a PUB does, and it also tells this
process which topics somebody subscribes to (``subscribed``), through the supervisor's relay
too. What costs work only for a watcher (the browser view's pictures, ``preview/<id>/``) is
made only while somebody subscribes to it.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

import zmq

from streams.bus.messages import encode
from streams.config import PublishConfig
from streams.errors import PublishError

if TYPE_CHECKING:  # the runtime's counters, handed in: the bus sits below the runtime
    from streams.runtime.stats import PipelineStats

logger = logging.getLogger(__name__)

_STOP = object()
SUBSCRIPTIONS_POLL_S = 0.05  # how often the sending thread reads new (un)subscriptions


class Publisher:
    """Binds a PUB socket at ``config.endpoint`` and publishes ``(topic, message)`` pairs."""

    def __init__(
        self,
        config: PublishConfig,
        stats: PipelineStats,
        context: zmq.Context | None = None,
        connect: bool = False,
    ) -> None:
        """``connect``: a worker process connecting to the supervisor's relay (``config`` then
        names the relay's internal endpoint; CURVE is the relay's job)."""
        self.config = config
        self.stats = stats
        self._authenticator = None
        # Its own context unless given one: close() terminates it, which is what waits (up to
        # the linger) until the last messages, such as each stream's "ended", are on the wire.
        self._owns_context = context is None
        self._context = context or zmq.Context()
        if config.curve is not None and not connect:
            # The ZAP authenticator is per context: a CURVE publisher gets its own.
            if not self._owns_context:
                self._context, self._owns_context = zmq.Context(), True
            self._authenticator = start_authenticator(self._context, config.curve)
        # Items are lists of encoded messages; the bound is on messages (``_queued``, under
        # ``_lock``, which also guards the drop counter that several threads add to).
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._queue_size = config.queue_size
        self._queued = 0
        self._lock = threading.Lock()
        # Topics at least one subscriber subscribed to (exact prefixes as they sent them),
        # replaced whole by the sending thread: readers take it without a lock.
        self.subscribed: frozenset[bytes] = frozenset()
        self._subscriptions_read_mono_s = 0.0
        if connect:
            self._socket = _sending_socket(self._context, zmq.XPUB, config)
            self._socket.connect(config.endpoint)
            self.endpoint = config.endpoint
        else:
            self._socket = bind_public_socket(self._context, zmq.XPUB, config)
            self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        time.sleep(config.join_grace_ms / 1000.0)
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()
        logger.info("publishing %s %s", "via" if connect else "on", self.endpoint)

    def publish(self, topic: str, message: dict[str, Any]) -> bool:
        """Encode and queue a message; returns False (and counts a drop) if the queue is full
        or the message cannot be encoded (logged)."""
        try:
            payload = encode(message)
        except (TypeError, ValueError) as err:
            logger.error("cannot publish %s: %s", topic, err)
            self.count_dropped(1)
            return False
        return self.publish_encoded([(topic.encode(), payload)]) == 1

    def publish_encoded(self, messages: list[tuple[bytes, bytes]]) -> int:
        """Queue ``(topic, payload)`` messages as one item; returns how many were queued.

        Those that do not fit in the queue (``queue_size`` messages) are dropped and counted.
        """
        with self._lock:
            room = self._queue_size - self._queued
            queued = len(messages) if len(messages) <= room else max(room, 0)
            self._queued += queued
            if queued < len(messages):
                self.stats.publish_dropped += len(messages) - queued
        if queued:
            self._queue.put(messages if queued == len(messages) else messages[:queued])
        return queued

    def count_dropped(self, count: int) -> None:
        """Count messages a producer could not hand over (it could not encode them)."""
        with self._lock:
            self.stats.publish_dropped += count

    def _read_subscriptions(self) -> None:
        """Apply the (un)subscriptions the XPUB has queued: ``\\x01topic`` / ``\\x00topic``, the
        first subscriber of a topic and its last leaving (a closed connection included)."""
        self._subscriptions_read_mono_s = time.monotonic()
        sock, topics = self._socket, None
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            message = sock.recv(zmq.NOBLOCK)
            if not message or message[0] not in (0, 1):
                continue  # not a subscription (an XPUB peer may send other messages)
            topics = set(self.subscribed) if topics is None else topics
            (topics.add if message[0] == 1 else topics.discard)(message[1:])
        if topics is not None:
            self.subscribed = frozenset(topics)

    def _run(self) -> None:
        send, more, last = self._socket.send, zmq.SNDMORE | zmq.NOBLOCK, zmq.NOBLOCK
        get, poll_s = self._queue.get, SUBSCRIPTIONS_POLL_S
        while True:
            try:
                item = get(timeout=poll_s)
            except queue.Empty:
                item = None
            if time.monotonic() - self._subscriptions_read_mono_s >= poll_s:
                self._read_subscriptions()
            if item is None:
                continue
            if item is _STOP:
                break
            with self._lock:
                self._queued -= len(item)
            sent = 0
            for topic, payload in item:
                try:  # the two frames, as send_multipart sends them, without its overhead
                    send(topic, more)
                    send(payload, last)
                    sent += 1
                except zmq.Again:
                    self.count_dropped(1)
                except zmq.ZMQError as err:
                    self.count_dropped(1)
                    logger.error("cannot publish %s: %s", topic.decode(errors="replace"), err)
            self.stats.published += sent

    def close(self, timeout_s: float = 2.0) -> None:
        """Send what is queued (up to ``timeout_s``), then close the socket."""
        if self._thread.is_alive():
            self._queue.put(_STOP)  # unbounded: the limit is on messages, counted above
            self._thread.join(timeout_s)
        self._socket.close(linger=500)
        if self._authenticator is not None:
            self._authenticator.stop()
        if self._owns_context:
            self._context.term()


def load_keypair(path: str) -> tuple[bytes, bytes]:
    """(public, secret) from a zmq.auth certificate file; PublishError if unusable."""
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise PublishError(f"cannot load CURVE key {path}: {err}") from err
    if secret is None:
        raise PublishError(f"{path} holds no secret key; expected the .key_secret file")
    return public, secret


def bind_public_socket(context: zmq.Context, socket_type: int, config: PublishConfig) -> zmq.Socket:
    """The socket subscribers connect to (PUB, or the relay's XPUB): CURVE, HWM, bound."""
    sock = _sending_socket(context, socket_type, config)
    if config.curve is not None:
        public, secret = load_keypair(config.curve.server_secret_key)
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True
    try:
        sock.bind(config.endpoint)
    except zmq.ZMQError as err:
        sock.close(0)
        raise PublishError(
            f"publish.endpoint: cannot bind {config.endpoint}: {err}{_bind_hint(err.errno)}"
        ) from err
    return sock


def _bind_hint(code: int) -> str:
    """What to check for the bind failures config validation cannot see."""
    if code == zmq.EADDRINUSE:
        return " (is another streams process using it?)"
    if code in (errno.EADDRNOTAVAIL, errno.ENODEV):
        return " (the host must be an address or interface of this machine, or '*' for all)"
    if code in (errno.EACCES, errno.EPERM):
        return " (no permission: choose a port above 1023 or a directory you can write)"
    return ""


def _sending_socket(context: zmq.Context, socket_type: int, config: PublishConfig) -> zmq.Socket:
    """A PUB/XPUB with the configured per-subscriber high-water mark and a short linger."""
    sock = context.socket(socket_type)
    sock.setsockopt(zmq.SNDHWM, config.sndhwm)
    sock.setsockopt(zmq.LINGER, 500)
    return sock


def start_authenticator(context: zmq.Context, curve):
    """Allow only clients whose public keys are in ``curve.authorized_clients``."""
    from zmq.auth.thread import ThreadAuthenticator

    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve(domain="*", location=curve.authorized_clients)
    logger.info("CURVE on: clients allowed from %s", curve.authorized_clients)
    return authenticator
