"""Redis Streams bridge (redis-py): one XADD per message into ``<prefix>:<kind>:<stream>``.

A key per stream and kind (``streams:det:cam1``, ``streams:stats``) lets a consumer group
follow just what it needs (``XREADGROUP GROUP g c STREAMS streams:event:door >``); each entry
has the fields ``kind``, ``stream`` (absent for ``stats``) and ``data`` (the bus message's JSON,
as published). ``MAXLEN ~ maxlen`` trims each key as it grows (approximate: Redis trims whole
nodes, cheaply). A batch is one pipelined round trip.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from streams.config import SinkConfig
from streams.sinks.base import Sink, SinkAuthError, SinkError
from streams.sinks.topics import Message, redis_key


class RedisSink(Sink):
    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self._client: redis.Redis | None = None

    def open(self, timeout_s: float) -> None:
        config = self.config
        options = {}
        if config.ca_file or config.cert_file:
            options = {
                "ssl_ca_certs": config.ca_file,
                "ssl_certfile": config.cert_file,
                "ssl_keyfile": config.key_file,
            }
        if config.username is not None:
            options["username"] = config.username
        if config.password is not None:
            options["password"] = config.password
        client = redis.Redis.from_url(
            config.url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry_on_timeout=False,
            retry=Retry(NoBackoff(), 0),  # the bridge retries, with back-off
            **options,
        )
        try:
            client.ping()
        except redis.AuthenticationError as err:
            client.close()
            raise SinkAuthError(
                f"the server refused the credentials ({err}); check the sink's username and "
                "password"
            ) from None
        except redis.ResponseError as err:
            client.close()
            if "NOAUTH" in str(err) or "WRONGPASS" in str(err):
                raise SinkAuthError(f"the server refused the credentials ({err})") from None
            raise SinkError(f"the server refused the connection ({err})") from None
        except redis.RedisError as err:
            client.close()
            raise SinkError(f"cannot connect: {err}") from None
        self._client = client

    def send(self, batch: list[Message]) -> int:
        prefix, maxlen = self.config.prefix, self.config.maxlen
        pipe = self._client.pipeline(transaction=False)
        for message in batch:
            fields = {"kind": message.kind, "data": message.payload}
            if message.stream is not None:
                fields["stream"] = message.stream
            pipe.xadd(redis_key(prefix, message), fields, maxlen=maxlen, approximate=True)
        try:
            pipe.execute()
        except redis.ResponseError as err:  # the server is up and said no: not a lost link
            raise SinkError(f"XADD refused: {err}") from None
        except redis.RedisError as err:
            raise SinkError(str(err) or type(err).__name__) from None
        return 0

    def close(self) -> int:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        return 0
