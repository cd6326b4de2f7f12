"""The supervisor's relay: worker processes publish into it, subscribers connect to it.

Why: with several worker processes there is still one endpoint to subscribe to. Workers'
PUB sockets connect to an internal XSUB; the public XPUB (CURVE, high-water mark, exactly
as a single process's PUB) is bound at ``publish.endpoint``; ``zmq.proxy`` moves messages
between them in C, without the GIL. Subscriptions travel upstream, so workers only send
what someone subscribed to, and a slow subscriber is cut off at the XPUB's high-water mark
as before: nothing blocks a worker.
"""

from __future__ import annotations

import logging
import threading

import zmq

from streams.bus.publisher import bind_public_socket, start_authenticator
from streams.config import PublishConfig

logger = logging.getLogger(__name__)


class Relay:
    """Binds ``bus_endpoint`` (internal, for workers) and ``config.endpoint`` (public)."""

    def __init__(self, config: PublishConfig, bus_endpoint: str) -> None:
        self._context = zmq.Context()
        self._authenticator = (
            start_authenticator(self._context, config.curve) if config.curve is not None else None
        )
        self._public = bind_public_socket(self._context, zmq.XPUB, config)
        self.endpoint = self._public.getsockopt_string(zmq.LAST_ENDPOINT)
        self._bus = self._context.socket(zmq.XSUB)
        self._bus.setsockopt(zmq.RCVHWM, max(config.sndhwm, 10_000))
        self._bus.setsockopt(zmq.LINGER, 0)
        self._bus.bind(bus_endpoint)
        self.bus_endpoint = self._bus.getsockopt_string(zmq.LAST_ENDPOINT)
        self._control = self._context.socket(zmq.PAIR)
        self._control.bind(f"inproc://relay-control-{id(self)}")
        self._control_peer = self._context.socket(zmq.PAIR)
        self._control_peer.connect(f"inproc://relay-control-{id(self)}")
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()
        logger.info(
            "publishing on %s (relay for worker processes at %s)", self.endpoint, self.bus_endpoint
        )

    def _run(self) -> None:
        try:
            zmq.proxy_steerable(self._bus, self._public, None, self._control_peer)
        except zmq.ZMQError as err:
            if err.errno != zmq.ETERM:
                logger.error("relay stopped: %s", err)

    def close(self) -> None:
        """Stop forwarding and close both endpoints (after the workers have exited)."""
        if self._thread.is_alive():
            self._control.send(b"TERMINATE")
            self._thread.join(2.0)
        for sock in (self._control, self._control_peer, self._bus, self._public):
            sock.close(linger=500 if sock is self._public else 0)
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()
