"""A bridge: ZeroMQ SUB -> bounded buffer -> one broker, on two threads.

The reader thread only moves messages from the SUB socket into the buffer, so the socket is
always drained and the pipeline's publisher never meets a slow subscriber. The sender thread
connects (exponential back-off with jitter while the broker is away), takes batches from the
buffer and hands them to the broker's :class:`Sink`. A batch whose send fails goes back to
the front of the buffer, so an outage costs only what overflows the buffer's bound (the
oldest messages, counted) plus what the broker's client had in flight when the connection
broke (counted too).
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from streams.capture.backoff import Backoff
from streams.redact import redact_url
from streams.sinks.buffer import Buffer
from streams.sinks.topics import Message, parse_topic

if TYPE_CHECKING:
    from streams.config import SinkConfig

logger = logging.getLogger(__name__)

BATCH = 500  # messages per send: one round trip (Redis pipeline, NATS acks) carries many
CONNECT_TIMEOUT_S = 5.0
DRAIN_S = 3.0  # on stop: how long the buffer may take to empty into a connected broker
STATES = ("connecting", "connected", "reconnecting", "stopped")


class SinkError(Exception):
    """The broker is unreachable or the connection broke: retry with back-off.

    ``accepted``: how many messages at the front of the batch were handed over before it broke
    (the rest go back to the buffer).
    """

    def __init__(self, message: str, accepted: int = 0) -> None:
        super().__init__(message)
        self.accepted = accepted


class SinkAuthError(SinkError):
    """The broker refused the credentials: retried too (they may be fixed on the broker's
    side), but logged as an error that names the sink and never the secret."""


class Sink(ABC):
    """One broker's client, driven by a :class:`Bridge`'s sender thread only."""

    def __init__(self, config: SinkConfig) -> None:
        self.config = config

    @abstractmethod
    def open(self, timeout_s: float) -> None:
        """Connect (and set up what the broker needs); SinkError when it cannot."""

    @abstractmethod
    def send(self, batch: list[Message]) -> int:
        """Hand ``batch`` to the broker; the number of its messages the client itself had to
        drop (its own queue full). SinkError when the connection is lost."""

    @abstractmethod
    def close(self) -> int:
        """Disconnect; the number of messages accepted by ``send`` that never reached the
        broker (in flight when the connection broke)."""


class Bridge:
    """Forwards the bus at ``endpoint`` to ``sink``, as ``config`` says (kinds, bound,
    back-off). ``figures()`` is what Prometheus and the logs show."""

    def __init__(self, config: SinkConfig, endpoint: str, sink: Sink | None = None) -> None:
        self.config = config
        self.endpoint = endpoint
        self.sink = sink if sink is not None else make_sink(config)
        self.buffer: Buffer[Message] = Buffer(config.queue_size)
        self.state = "connecting"
        # received = sent + client_dropped + queue_full dropped + waiting in the buffer
        self.received = 0
        self.sent = 0  # handed to the broker's client (a counter: never taken back)
        self.client_dropped = 0  # the broker client's own queue was full
        self.lost_in_flight = 0  # of those sent, gone with the connection before delivery
        self.reconnects = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._drain_until = float("inf")
        self._reader_done = threading.Event()
        self._subscribed = threading.Event()
        self._threads = [
            threading.Thread(target=self._read, name=f"sink-{config.name}-read", daemon=True),
            threading.Thread(target=self._send, name=f"sink-{config.name}-send", daemon=True),
        ]

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def alive(self) -> bool:
        """Both threads still run (False once stopped, or when one gave up)."""
        return all(thread.is_alive() for thread in self._threads)

    def start(self, timeout_s: float = 5.0) -> None:
        """Start both threads; returns once the SUB socket is connecting (it need not wait
        for the publisher, which may bind later)."""
        for thread in self._threads:
            thread.start()
        self._subscribed.wait(timeout_s)

    def stop(self, drain_s: float = DRAIN_S) -> None:
        """Read what has arrived, give the broker up to ``drain_s`` to take the buffer, close."""
        self._drain_until = time.monotonic() + drain_s
        self._stop.set()
        for thread in self._threads:
            thread.join(drain_s + CONNECT_TIMEOUT_S + 2)

    def figures(self) -> dict[str, Any]:
        return {
            "sink": self.config.name,
            "type": self.config.type,
            "url": redact_url(self.config.url),
            "state": self.state,
            "received": self.received,
            "sent": self.sent,
            "dropped": {
                "queue_full": self.buffer.dropped,
                "client_queue": self.client_dropped,
                "lost_in_flight": self.lost_in_flight,
            },
            "queue_depth": len(self.buffer),
            "queue_bound": self.buffer.bound,
            "reconnects": self.reconnects,
            "error": self.error,
        }

    # --- the reader: SUB socket -> buffer -------------------------------------------------------

    def _read(self) -> None:
        import zmq

        context = zmq.Context()
        socket = context.socket(zmq.SUB)
        try:
            socket.setsockopt(zmq.RCVHWM, 100_000)
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.RECONNECT_IVL, 100)
            for kind in self.config.kinds or ("",):
                socket.setsockopt(zmq.SUBSCRIBE, f"{kind}/".encode() if kind else b"")
            socket.connect(self.endpoint)
            self._subscribed.set()
            idle_after_stop = 0
            while idle_after_stop < 2:  # after stop: until 2 polls (0.2 s) find nothing
                if not socket.poll(100):
                    idle_after_stop += self._stop.is_set()
                    continue
                batch = []
                while len(batch) < BATCH:
                    try:
                        topic, payload = socket.recv_multipart(zmq.NOBLOCK)[:2]
                    except zmq.Again:
                        break
                    except ValueError:  # a one-part message: not ours
                        continue
                    message = parse_topic(topic, payload)
                    if message is not None:
                        batch.append(message)
                self.received += len(batch)
                self.buffer.put_many(batch)
        except Exception as err:  # a bug or a bad endpoint: this bridge cannot work on
            logger.error("%s: the bus reader failed (%s: %s)", self.label, type(err).__name__, err)
            self._stop.set()
        finally:
            socket.close(0)
            context.term()
            self._subscribed.set()
            self._reader_done.set()

    # --- the sender: buffer -> broker ----------------------------------------------------------

    def _send(self) -> None:
        config = self.config
        backoff = Backoff(config.reconnect_initial_s, config.reconnect_max_s)
        connected = False
        lost_at: float | None = None
        dropped_at_loss = 0
        try:
            while True:
                if self._stop.is_set() and (
                    not connected
                    or (self._reader_done.is_set() and not len(self.buffer))
                    or time.monotonic() > self._drain_until
                ):
                    break
                if not connected:
                    try:
                        self.sink.open(CONNECT_TIMEOUT_S)
                    except Exception as err:  # a library's own error too: never a dead thread
                        self._open_failed(as_sink_error(err))
                        if lost_at is None:
                            lost_at, dropped_at_loss = time.monotonic(), self._dropped()
                        self._stop.wait(backoff.next()[1])
                        continue
                    connected = True
                    backoff.reset()
                    self._connected(lost_at, dropped_at_loss)
                    lost_at = None
                    self.error = None
                batch = self.buffer.take(BATCH, 0.1)
                if not batch:
                    continue
                try:
                    dropped = self.sink.send(batch)
                    self.client_dropped += dropped
                    self.sent += len(batch) - dropped  # a dropped one is not also sent
                except Exception as err:
                    err = as_sink_error(err)
                    self.sent += err.accepted
                    self.buffer.put_back(batch[err.accepted :])
                    connected = False
                    lost_at, dropped_at_loss = time.monotonic(), self._dropped()
                    self.lost_in_flight += self.sink.close()
                    self.state, self.error = "reconnecting", str(err)
                    self.reconnects += 1
                    logger.warning(
                        "%s: connection lost (%s); reconnecting with back-off, up to %d "
                        "messages wait (then the oldest are dropped and counted)",
                        self.label,
                        err,
                        config.queue_size,
                    )
        finally:
            if connected:
                self.lost_in_flight += self.sink.close()
            self.state = "stopped"

    def _dropped(self) -> int:
        return self.buffer.dropped + self.client_dropped + self.lost_in_flight

    def _open_failed(self, err: SinkError) -> None:
        """State ``reconnecting``; one log line per outage and reason (the rest at debug)."""
        message = str(err)
        repeated = self.state == "reconnecting" and message == self.error
        if self.state == "connecting":
            self.reconnects += 1  # unreachable at start: an outage from the first moment
        self.state, self.error = "reconnecting", message
        if repeated:
            logger.debug("%s: still cannot connect: %s", self.label, message)
            return
        level = logging.ERROR if isinstance(err, SinkAuthError) else logging.WARNING
        logger.log(
            level,
            "%s: %s; retrying with back-off (up to %g s), up to %d messages wait "
            "(then the oldest are dropped and counted)",
            self.label,
            message,
            self.config.reconnect_max_s,
            self.config.queue_size,
        )

    def _connected(self, lost_at: float | None, dropped_before: int) -> None:
        self.state = "connected"
        if lost_at is None:
            logger.info("%s: connected", self.label)
            return
        logger.info(
            "%s: connected again after %.1f s; %d messages dropped meanwhile",
            self.label,
            time.monotonic() - lost_at,
            self._dropped() - dropped_before,
        )


def as_sink_error(err: Exception) -> SinkError:
    """``err`` as a SinkError whose words carry no credentials."""
    if isinstance(err, SinkError):
        return type(err)(redact_url(str(err)), err.accepted)
    text = redact_url(str(err)) or "no detail"
    return SinkError(f"{type(err).__name__}: {text}")


def make_sink(config: SinkConfig) -> Sink:
    """The broker client for ``config.type`` (its library imported only now)."""
    if config.type == "mqtt":
        from streams.sinks.mqtt import MqttSink

        return MqttSink(config)
    if config.type == "redis":
        from streams.sinks.redis_streams import RedisSink

        return RedisSink(config)
    if config.type == "nats":
        from streams.sinks.nats_jetstream import NatsSink

        return NatsSink(config)
    raise ValueError(f"unknown sink type {config.type!r}")
