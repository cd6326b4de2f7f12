"""Bridges from the ZeroMQ bus to the brokers users already run: MQTT, Redis Streams, NATS
JetStream (``sinks:`` in the config, ``streams bridge``).

Each bridge subscribes to the pipeline's endpoint like any client, so a slow or dead broker
costs the pipeline nothing: what the bridge cannot send waits in its own bounded buffer, and
beyond that bound the oldest messages are dropped and counted (``base.Bridge``).
"""
