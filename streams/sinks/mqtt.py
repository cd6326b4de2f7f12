"""MQTT bridge (paho-mqtt): ``<prefix>/<kind>/<stream>``, QoS and retain per kind.

A fresh paho client per connection, its own reconnects off (``reconnect_on_failure=False``):
the bridge's back-off reconnects, the same for every broker. The last will
(``<prefix>/availability`` = ``offline``, retained) tells subscribers and Home Assistant when
the bridge is gone; ``online`` is published on every connect. paho writes on its network
thread; at most WINDOW messages are handed to it and not yet written (QoS 0) or acknowledged
(QoS 1, 2), so its queue stays bounded and a stalled broker backs up into the bridge's buffer.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from streams.config import SinkConfig
from streams.sinks import discovery
from streams.sinks.base import Sink, SinkAuthError, SinkError
from streams.sinks.topics import Message, mqtt_topic

logger = logging.getLogger(__name__)

WINDOW = 1000  # messages handed to paho and not yet written or acknowledged
STALL_S = 10.0  # a connected broker that takes nothing for this long is treated as lost
AUTH_REFUSED = {4, 5, 134, 135}  # v3.1.1 bad user name or password, not authorised; v5 alike


class MqttSink(Sink):
    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        parts = urlsplit(config.url)
        self._host = parts.hostname or ""
        self._tls = parts.scheme.lower() == "mqtts" or config.ca_file is not None
        self._port = parts.port or (8883 if self._tls else 1883)
        self._username = config.username or (unquote(parts.username) if parts.username else None)
        self._password = config.password or (unquote(parts.password) if parts.password else None)
        self.availability = f"{config.prefix}/availability"
        self._client: mqtt.Client | None = None
        self._answered = threading.Event()
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._connack = None
        self._lost: str | None = None
        self._handed = 0  # publish() calls accepted on this connection
        self._done = 0  # of those, written (QoS 0) or acknowledged (QoS 1, 2)
        # The bridge's own publishes (availability, discovery) not yet written or acknowledged:
        # not bus messages, so not among those lost in flight when the connection breaks.
        self._own: list[mqtt.MQTTMessageInfo] = []
        self._discovered: set[tuple[str, str, str]] = set()  # announced on this connection
        self._answered.clear()

    # --- paho's network thread ---------------------------------------------------------------

    def _on_connect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self._connack = reason_code
        self._answered.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self._lost = str(reason_code)
        self._answered.set()

    def _on_publish(self, _client, _userdata, _mid, _reason_code, _properties) -> None:
        with self._lock:
            self._done += 1

    # --- the bridge's sender thread ------------------------------------------------------------

    def open(self, timeout_s: float) -> None:
        config = self.config
        self._reset()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=config.client_id or f"streams-{config.name}-{os.getpid()}",
            reconnect_on_failure=False,
        )
        client.connect_timeout = timeout_s
        client.max_inflight_messages_set(WINDOW)
        client.max_queued_messages_set(0)  # unbounded in paho; WINDOW bounds it
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        if self._username is not None:
            client.username_pw_set(self._username, self._password)
        if self._tls:
            try:
                client.tls_set(
                    ca_certs=config.ca_file, certfile=config.cert_file, keyfile=config.key_file
                )
            except (OSError, ssl.SSLError) as err:
                raise SinkError(f"TLS set-up failed: {err}") from None
        client.will_set(self.availability, b"offline", qos=1, retain=True)
        try:
            client.connect(self._host, self._port, keepalive=config.keepalive_s)
        except (OSError, ssl.SSLError) as err:
            raise SinkError(f"cannot connect to {self._host}:{self._port}: {_words(err)}") from None
        client.loop_start()
        self._client = client
        if not self._answered.wait(timeout_s):
            self.close()
            raise SinkError(f"no answer from the broker within {timeout_s:g} s")
        code = self._connack
        if code is None or code.is_failure:
            self.close()
            reason = str(code) if code is not None else f"disconnected ({self._lost})"
            if code is not None and code.value in AUTH_REFUSED:
                raise SinkAuthError(
                    f"the broker refused the credentials ({reason}); check the sink's "
                    "username and password"
                )
            raise SinkError(f"the broker refused the connection ({reason})")
        self._publish(self.availability, b"online", 1, True)

    def _publish(
        self, topic: str, payload: bytes, qos: int, retain: bool, own: bool = True
    ) -> MQTTErrorCode:
        """paho's publish, counted: every call that paho takes ends in one on_publish.
        ``own``: the bridge's message, not one from the bus."""
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._handed += 1
            if own:
                self._own = [i for i in self._own if not i.is_published()]
                self._own.append(info)
        return info.rc

    def send(self, batch: list[Message]) -> int:
        config = self.config
        prefix = config.prefix
        qos = {kind: config.qos_of(kind) for kind in {m.kind for m in batch}}
        retain = {kind: config.retain_of(kind) for kind in qos}
        dropped = 0
        for index, message in enumerate(batch):
            self._wait_for_window(index)
            rc = self._publish(
                mqtt_topic(prefix, message),
                message.payload,
                qos[message.kind],
                retain[message.kind],
                own=False,
            )
            if rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
                dropped += 1
                continue
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise SinkError(f"publish failed: {mqtt.error_string(rc)}", index)
            if message.kind == "stats" and config.discovery:
                self._announce(message.payload)
        return dropped

    def _wait_for_window(self, index: int) -> None:
        """Block this thread (never the bus reader) while paho holds WINDOW messages."""
        began = time.monotonic()
        while True:
            if self._lost is not None:
                raise SinkError(f"disconnected: {self._lost}", index)
            if self._handed - self._done < WINDOW:
                return
            if time.monotonic() - began > STALL_S:
                raise SinkError(f"the broker took nothing for {STALL_S:g} s", index)
            time.sleep(0.002)

    def _announce(self, payload: bytes) -> None:
        """Zone and line counters: retained states, and HA discovery once per connection."""
        config = self.config
        try:
            stats = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        for group, stream, name, state in discovery.counter_states(stats, config.prefix):
            key = (group, stream, name)
            if key not in self._discovered:
                self._discovered.add(key)
                for topic, body in discovery.discovery_configs(
                    config.prefix, config.discovery_prefix, self.availability, group, stream, name
                ):
                    self._publish(topic, body, 1, True)
            self._publish(
                discovery.state_topic(config.prefix, group, stream, name),
                orjson.dumps(state),
                0,
                True,
            )

    def close(self) -> int:
        client = self._client
        if client is None:
            return 0
        if self._lost is None:
            # A clean goodbye (the will is not sent, so say offline ourselves), once paho has
            # written what it holds.
            self._publish(self.availability, b"offline", 1, True)
            deadline = time.monotonic() + 2.0
            while self._handed > self._done and self._lost is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            client.disconnect()
        client.loop_stop()
        self._client = None
        own_lost = sum(not info.is_published() for info in self._own)
        return max(0, self._handed - self._done - own_lost)


def _words(err: BaseException) -> str:
    return err.strerror if isinstance(err, OSError) and err.strerror else str(err) or repr(err)
