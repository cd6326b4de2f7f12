"""NATS JetStream bridge (nats-py): subjects ``<prefix>.<kind>.<stream>``, one JetStream
stream over ``<prefix>.>``, created on first use.

nats-py is asyncio: its loop runs on a thread of its own, and the bridge's sender thread
hands it one coroutine per call. A batch is published with ``publish_async`` and its acks
awaited together (one round trip's wait per batch, not per message). nats-py's own
reconnects are off: the bridge's back-off reconnects, the same for every broker.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any

import nats
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from streams.config import SinkConfig
from streams.sinks.base import Sink, SinkAuthError, SinkError
from streams.sinks.topics import Message, nats_subject

ACK_TIMEOUT_S = 10.0


class NatsSink(Sink):
    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.stream_name = config.stream or config.prefix.replace("-", "_")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"sink-{config.name}-nats", daemon=True
        )
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        self._lost: str | None = None

    def _run(self, coroutine, timeout_s: float):
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise SinkError(f"no answer from the server within {timeout_s:g} s") from None

    def open(self, timeout_s: float) -> None:
        self._lost = None
        self._run(self._open(timeout_s), timeout_s + 2)

    async def _open(self, timeout_s: float) -> None:
        config = self.config
        options: dict[str, Any] = {}
        if config.username is not None:
            options["user"] = config.username
        if config.password is not None:
            options["password"] = config.password
        if config.ca_file or config.url.lower().startswith("tls://"):
            context = ssl.create_default_context(cafile=config.ca_file)
            if config.cert_file:
                context.load_cert_chain(config.cert_file, config.key_file)
            options["tls"] = context

        async def lost(*_args) -> None:
            self._lost = "disconnected"

        async def error(err: Exception) -> None:
            self._lost = self._lost or str(err)

        try:
            nc = await nats.connect(
                config.url,
                connect_timeout=timeout_s,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                disconnected_cb=lost,
                closed_cb=lost,
                error_cb=error,
                **options,
            )
        except nats.errors.NoServersError:
            raise SinkError(f"cannot connect: {self._lost or 'no server answered'}") from None
        except Exception as err:
            text = str(err) or type(err).__name__
            if "authorization" in text.lower():
                raise SinkAuthError(
                    f"the server refused the credentials ({text}); check the sink's username "
                    "and password"
                ) from None
            raise SinkError(f"cannot connect: {text}") from None
        js = nc.jetstream(timeout=timeout_s)
        try:
            await js.stream_info(self.stream_name)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=self.stream_name,
                    subjects=[f"{config.prefix}.>"],
                    max_age=config.max_age_s or None,
                    max_msgs_per_subject=config.max_msgs_per_subject,
                    storage=StorageType(config.storage),
                )
            )
        except Exception as err:
            await nc.close()
            raise SinkError(
                f"JetStream is not answering (is the server run with -js?): {err}"
            ) from None
        self._nc, self._js = nc, js

    def send(self, batch: list[Message]) -> int:
        if self._lost is not None or self._nc is None:
            raise SinkError(f"connection lost: {self._lost}")
        self._run(self._send(batch), ACK_TIMEOUT_S + 5)
        return 0

    async def _send(self, batch: list[Message]) -> None:
        """Publish the batch, then wait for its acks, watching the connection meanwhile: a
        server that died answers nothing, and ``_lost`` says so long before the ack timeout."""
        prefix, js = self.config.prefix, self._js
        try:
            pending = {
                await js.publish_async(nats_subject(prefix, message), message.payload)
                for message in batch
            }
            deadline = self._loop.time() + ACK_TIMEOUT_S
            while pending:
                if self._lost is not None:
                    raise SinkError(f"connection lost: {self._lost}")
                if self._loop.time() > deadline:
                    raise SinkError(f"JetStream acknowledged nothing within {ACK_TIMEOUT_S:g} s")
                done, pending = await asyncio.wait(pending, timeout=0.1)
                for ack in done:
                    ack.result()  # a refused message raises here
        except SinkError:
            raise
        except Exception as err:
            raise SinkError(str(err) or type(err).__name__) from None

    def close(self) -> int:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                self._run(nc.close(), 5)
            except Exception:  # already gone: nothing to close
                pass
        return 0
