"""A subscriber client: connect to one or more publishers, filter by stream and kind; or
several publishers (the nodes of a cluster) read as one, each message with its endpoint."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import zmq

from streams.bus.messages import KINDS, decode, topic


class Subscriber:
    """SUB socket over one or more ``streams`` publishers.

    Example:
        with Subscriber(["tcp://127.0.0.1:5555"], stream="cam1") as sub:
            for topic, message in sub.messages(timeout_s=5):
                print(message["detections"])
    """

    def __init__(
        self,
        endpoints: Iterable[str],
        stream: str | None = None,
        kinds: Iterable[str] = KINDS,
        rcvhwm: int = 10_000,
        context: zmq.Context | None = None,
        curve_server_key: str | None = None,
        curve_client_key: str | None = None,
    ) -> None:
        self._socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        if curve_server_key or curve_client_key:
            self._use_curve(curve_server_key, curve_client_key)
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RECONNECT_IVL, 50)  # catch a (re)starting publisher fast
        for kind in kinds:
            # stats are pipeline-wide: a per-stream subscriber still gets them.
            prefix = topic(kind, None if kind == "stats" else stream)
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        for endpoint in endpoints:
            self._socket.connect(endpoint)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)

    def _use_curve(self, server_key: str | None, client_key: str | None) -> None:
        """Encrypt and authenticate with the server's public and our secret certificate."""
        if not (server_key and client_key):
            raise ValueError(
                "CURVE needs both the server's public key and the client's secret key file"
            )
        server_public, _ = load_curve_key(server_key)
        public, secret = load_curve_key(client_key, secret=True)
        self._socket.curve_serverkey = server_public
        self._socket.curve_publickey = public
        self._socket.curve_secretkey = secret

    def receive(self, timeout_s: float) -> tuple[bytes, dict[str, Any]] | None:
        """Next ``(topic, message)``, or None after ``timeout_s`` with nothing."""
        if not self._poller.poll(int(timeout_s * 1000)):
            return None
        topic_bytes, payload = self._socket.recv_multipart()
        return topic_bytes, decode(payload)

    def messages(self, timeout_s: float) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """Yield messages until none arrives for ``timeout_s``."""
        while (item := self.receive(timeout_s)) is not None:
            yield item

    def close(self) -> None:
        self._socket.close(0)

    def __enter__(self) -> Subscriber:  # noqa: PYI034 (typing.Self needs 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MergedSubscriber:
    """One :class:`Subscriber` per endpoint, read as one: what each message came from is
    known (one SUB socket connected to all would mix them), so the ``stats`` of several
    nodes can be merged and a node gone quiet can be named.

    Example:
        with MergedSubscriber(["tcp://node0:5555", "tcp://node1:5555"]) as sub:
            endpoint, topic, message = sub.receive(1.0) or (None, None, None)
    """

    def __init__(self, endpoints: Iterable[str], **options: Any) -> None:
        self.endpoints = list(dict.fromkeys(endpoints))  # each once, in the order given
        self._subs: dict[zmq.Socket, tuple[str, Subscriber]] = {}
        self._poller = zmq.Poller()
        self._pending: deque[tuple[str, bytes, dict[str, Any]]] = deque()
        try:
            for endpoint in self.endpoints:
                sub = Subscriber([endpoint], **options)
                self._subs[sub._socket] = (endpoint, sub)
                self._poller.register(sub._socket, zmq.POLLIN)
        except BaseException:
            self.close()
            raise

    def receive(self, timeout_s: float) -> tuple[str, bytes, dict[str, Any]] | None:
        """Next ``(endpoint, topic, message)`` from any endpoint, or None after ``timeout_s``.
        One message from each ready endpoint in turn, so a busy node never starves another."""
        if not self._pending:
            for sock, _ in self._poller.poll(int(timeout_s * 1000)):
                endpoint, sub = self._subs[sock]
                if (item := sub.receive(0)) is not None:
                    self._pending.append((endpoint, *item))
        return self._pending.popleft() if self._pending else None

    def close(self) -> None:
        for _, sub in self._subs.values():
            sub.close()

    def __enter__(self) -> MergedSubscriber:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_curve_key(path: str, secret: bool = False) -> tuple[bytes, bytes | None]:
    """(public, secret) Z85 keys from a certificate file made by ``streams keys``; the secret
    is None in a public ``.key``. ValueError naming the file and what is wrong with it (a
    missing file, a directory, not a certificate, no secret key where ``secret`` is asked).
    """
    import zmq.auth
    from zmq.utils.z85 import Z85CHARS

    file = Path(path)
    if file.is_dir():
        raise ValueError(f"{path} is a directory; expected a key file")
    if not file.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        public, secret_key = zmq.auth.load_certificate(file)
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from None
    except ValueError:
        public = secret_key = None
    for key in (public, secret_key):
        if key is not None and (len(key) != 40 or not set(key) <= set(Z85CHARS)):
            public = None  # a key is 40 Z85 characters
    if public is None:
        raise ValueError(
            f"{path} is not a CURVE key file (expected a public-key line of 40 Z85 "
            "characters, as `streams keys` writes)"
        )
    if secret and secret_key is None:
        raise ValueError(f"{path} holds no secret key; expected a .key_secret file")
    return public, secret_key
