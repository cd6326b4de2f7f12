"""Where a bus message goes on each broker: names built from its ZeroMQ topic alone.

A bus topic is ``<kind>/<stream>/`` or ``<kind>/`` (``stats/``); the bridge never parses the
JSON payload to route it, so a kind added later (snapshots, clips) flows through unchanged.
The layouts are in docs/messages.md (Brokers).
"""

from __future__ import annotations

from typing import NamedTuple


class Message(NamedTuple):
    """One bus message as a bridge carries it: routing from the topic, the payload as sent."""

    kind: str
    stream: str | None
    payload: bytes


def parse_topic(topic: bytes, payload: bytes) -> Message | None:
    """``det/cam1/`` -> ``Message("det", "cam1", ...)``; ``stats/`` -> stream None; None for a
    topic that is not ``kind/`` or ``kind/stream/``."""
    parts = topic.decode("utf-8", "replace").split("/")
    if len(parts) == 2 and parts[0] and not parts[1]:
        return Message(parts[0], None, payload)
    if len(parts) == 3 and parts[0] and parts[1] and not parts[2]:
        return Message(parts[0], parts[1], payload)
    return None


def mqtt_topic(prefix: str, message: Message) -> str:
    """``streams/det/cam1``, ``streams/stats``."""
    if message.stream is None:
        return f"{prefix}/{message.kind}"
    return f"{prefix}/{message.kind}/{message.stream}"


def redis_key(prefix: str, message: Message) -> str:
    """``streams:det:cam1``, ``streams:stats`` (stream ids hold no ``:``)."""
    if message.stream is None:
        return f"{prefix}:{message.kind}"
    return f"{prefix}:{message.kind}:{message.stream}"


def nats_token(stream: str) -> str:
    """A stream id as one subject token: ``.`` separates tokens, so it is written ``%2E``
    (ids hold no ``%``, so this never makes two ids alike)."""
    return stream.replace(".", "%2E")


def nats_subject(prefix: str, message: Message) -> str:
    """``streams.det.cam1``, ``streams.stats``."""
    if message.stream is None:
        return f"{prefix}.{message.kind}"
    return f"{prefix}.{message.kind}.{nats_token(message.stream)}"
