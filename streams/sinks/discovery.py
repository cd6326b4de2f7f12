"""Home Assistant MQTT discovery of the per-zone and per-line counters in ``stats``.

Each ``stats`` message lists, per stream with zones or lines, their counts (docs/messages.md).
For each zone the MQTT bridge publishes one retained state (``<prefix>/zone/<stream>/<zone>``:
occupancy, entered, exited, dwell alerts) and, once per connection, a retained discovery
config per counter under ``<discovery_prefix>/sensor/...``, so Home Assistant shows them as
sensors of one device per stream without any YAML on its side. Lines likewise (in, out).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

ZONE_FIELDS = (  # (field, state_class): occupancy goes up and down, the rest only up
    ("occupancy", "measurement"),
    ("entered", "total_increasing"),
    ("exited", "total_increasing"),
    ("dwell_alerts", "total_increasing"),
)
LINE_FIELDS = (("in", "total_increasing"), ("out", "total_increasing"))
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe(name: str) -> str:
    """A zone or line name as one MQTT topic level / HA object id (``+``, ``#``, ``/`` and
    spaces become ``_``)."""
    return _UNSAFE.sub("_", name) or "_"


def counter_states(stats: dict[str, Any], prefix: str) -> list[tuple[str, str, str, dict]]:
    """``(group, stream, name, state)`` per zone (group ``zone``) and line (``line``) of a
    stats message; ``state`` is the retained JSON for ``<prefix>/<group>/<stream>/<name>``."""
    rows = []
    for stream in stats.get("streams", ()):
        sid = stream.get("stream")
        for zone in stream.get("zones", ()):
            state = {key: zone.get(key, 0) for key, _ in ZONE_FIELDS}
            rows.append(("zone", sid, zone["zone"], state))
        for line in stream.get("lines", ()):
            rows.append(("line", sid, line["line"], {"in": line["in"], "out": line["out"]}))
    return rows


def state_topic(prefix: str, group: str, stream: str, name: str) -> str:
    return f"{prefix}/{group}/{stream}/{safe(name)}"


def discovery_configs(
    prefix: str, discovery_prefix: str, availability: str, group: str, stream: str, name: str
) -> list[tuple[str, bytes]]:
    """``(topic, retained payload)`` of each HA sensor of one zone or line."""
    node = safe(prefix.replace("/", "_"))
    fields = ZONE_FIELDS if group == "zone" else LINE_FIELDS
    configs = []
    for field, state_class in fields:
        object_id = f"{safe(stream)}_{group}_{safe(name)}_{field}"
        payload = {
            "name": f"{name} {field.replace('_', ' ')}",
            "unique_id": f"{node}_{object_id}",
            "object_id": f"{node}_{object_id}",
            "state_topic": state_topic(prefix, group, stream, name),
            "value_template": f"{{{{ value_json['{field}'] }}}}",
            "state_class": state_class,
            "availability_topic": availability,
            "device": {
                "identifiers": [f"{node}_{safe(stream)}"],
                "name": f"{node} {stream}",
                "manufacturer": "streams",
                "model": "video stream analytics",
            },
        }
        configs.append(
            (f"{discovery_prefix}/sensor/{node}/{object_id}/config", orjson.dumps(payload))
        )
    return configs
