"""The reference docs and the code agree: every config key the parser accepts is documented,
and every documented key is one the parser accepts (docs/configuration.md); likewise for the
fields of published messages (docs/messages.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from streams.config import parse_config
from streams.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs"
MINIMAL = {"streams": [{"id": "a", "url": "sample:bikes.mp4"}]}


def accepted_keys(section: str) -> set[str]:
    """The keys the real parser accepts in ``section``, read from its unknown-key error."""
    raw = {**MINIMAL}
    if section.startswith("streams[]."):  # zones, lines: each item's keys
        item = {"tracking": {"enabled": True}, section.split(".")[1]: [{"zz_unknown": 1}]}
        raw["streams"] = [{"id": "a", "url": "sample:bikes.mp4", **item}]
    elif section == "streams":
        raw["streams"] = [{"id": "a", "url": "sample:bikes.mp4", "zz_unknown": 1}]
    elif section.startswith("sinks[]."):  # each type's own keys
        kind = section.split(".")[1]
        raw["sinks"] = [{"type": kind, "url": f"{kind}://h:1", "zz_unknown": 1}]
    elif section == "publish.curve":
        raw["publish"] = {"curve": {"zz_unknown": 1}}
    elif section == "":
        raw["zz_unknown"] = 1
    else:
        raw[section] = {"zz_unknown": 1}
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    match = re.search(r"zz_unknown: unknown key; expected one of (.*)$", str(info.value))
    assert match, str(info.value)
    return set(match.group(1).split(", "))


def documented_keys() -> dict[str, set[str]]:
    """Section -> keys in docs/configuration.md: each '## `section`' table's first column, and
    for publish.curve the keys of its YAML example."""
    text = (DOCS / "configuration.md").read_text()
    sections: dict[str, set[str]] = {}
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        heading = re.match(r"`([\w.\[\]]+)`", block)
        if not heading:
            continue
        name = heading.group(1)
        rows = re.findall(r"^\| `(\w+)` \|", block, flags=re.M)
        if name == "sinks":  # a list: its keys are in sinks[].TYPE
            sections[name] = set()
            continue
        if not rows:  # publish.curve: documented by its example
            example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", block, re.S).group(1))
            rows = list(example["publish"]["curve"])
        sections[name] = set(rows)
    return sections


def test_every_config_key_is_documented_and_every_documented_key_exists():
    documented = documented_keys()
    per_stream = {"streams[].zones", "streams[].lines"}
    per_sink = {"sinks[].mqtt", "sinks[].redis", "sinks[].nats"}
    assert set(documented) == accepted_keys("") | {"publish.curve"} | per_stream | per_sink, sorted(
        documented
    )
    for section, keys in documented.items():
        if section == "sinks":
            continue
        assert keys == accepted_keys(section), (
            f"{section}: undocumented {sorted(accepted_keys(section) - keys)}, "
            f"documented but unknown {sorted(keys - accepted_keys(section))}"
        )


def flatten(message: dict, prefix: str = "") -> set[str]:
    """Every field path of a message: ``latency_ms``, ``latency_ms.decode``, ``detections``,
    ``detections[].label``."""
    keys = set()
    for key, value in message.items():
        path = f"{prefix}{key}"
        keys.add(path)
        if isinstance(value, dict):
            keys |= flatten(value, f"{path}.")
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    keys |= flatten(item, f"{path}[].")
    return keys


def documented_fields() -> dict[str, set[str]]:
    """Kind -> field paths docs/messages.md shows: its JSON example and its field table."""
    import json

    text = (DOCS / "messages.md").read_text()
    fields: dict[str, set[str]] = {}
    for block in re.split(r"^## ", text, flags=re.M)[1:]:
        heading = re.match(r"`(det|status|stats|event|snapshot|clip)`", block)
        if not heading:
            continue
        example = json.loads(re.search(r"```json\n(.*?)```", block, re.S).group(1))
        keys = flatten(example)
        for cell in re.findall(r"^\| (`[^|]+`) \|", block, flags=re.M):
            keys |= {name for name in re.findall(r"`([\w.\[\]]+)`", cell)}
        fields[heading.group(1)] = {k for k in keys if not k.endswith("[]")}
    return fields


def test_every_message_field_is_documented_and_every_documented_field_is_sent(assets, tmp_path):
    """Real messages from a real run that has every kind of event: a file that plays to its
    end, one that fails, a camera that is not there (reconnecting), zones and lines (one that
    does not fit its frames), snapshots and clips of events, two worker processes, a node of a
    cluster (``--shard``)."""
    from tests.helpers import Collector, free_port, start_cli, wait_until, write_config

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 64)
    port = free_port()
    config = write_config(
        tmp_path / "c.yaml",
        [
            {
                "id": "carphone",
                "url": str(assets.videos["carphone_pristine.mp4"]),
                "pace": "none",
                "tracking": {"enabled": True},  # detections[].track_id
                # Beyond its 176x144 frames: stats' analytics_error (and a live note).
                "zones": [{"name": "wide", "points": [[0, 0], [900, 0], [900, 144]]}],
            },
            {  # every kind of event: the cyclists cross the middle, cars stay and go
                "id": "bikes",
                "url": str(assets.videos["bikes.mp4"]),
                "pace": "none",
                "fps": 10,
                "tracking": {"enabled": True},
                "zones": [
                    {
                        "name": "all",
                        "units": "fraction",
                        "points": [[0, 0], [1, 0], [1, 1], [0, 1]],
                        "dwell_alert_s": 0.5,
                    }
                ],
                "lines": [{"name": "mid", "units": "fraction", "a": [0.5, 0], "b": [0.5, 1]}],
                "record": {"enabled": True, "pre_s": 1, "post_s": 1},  # snapshot, clip
            },
            {"id": "garbage", "url": str(garbage)},
            {"id": "absent", "url": f"rtsp://127.0.0.1:{free_port()}/none"},
        ],
        port,
        workers={"processes": 2},
        capture={"open_timeout_s": 1, "reconnect_max_s": 1},
        record={"dir": str(tmp_path / "recordings")},
    )
    collector = Collector(f"tcp://127.0.0.1:{port}")
    documented = documented_fields()

    def sent_fields() -> dict[str, set[str]]:
        sent = {kind: set() for kind in ("det", "status", "stats", "event", "snapshot", "clip")}
        for _, message in list(collector.messages):
            sent[message["type"]] |= flatten(message)
        return sent

    # Until every documented field has been seen (however slowly a loaded machine starts the
    # workers), then a drain: its `ended` messages are part of what is checked.
    # A cluster of one node (--shard 0/1, every stream): stats' pipeline.shard.
    process = start_cli("run", str(config), "--no-live", "--shard", "0/1")
    try:
        wait_until(lambda: all(documented[k] <= v for k, v in sent_fields().items()), 90, 0.5)
        code, _ = process.drain(timeout_s=30)
        collector.finish()
    finally:
        if process.poll() is None:
            process.kill()
        collector.close()
    assert code == 0, process.output()[-2000:]
    sent = sent_fields()
    for kind in sent:
        assert sent[kind] == documented[kind], (
            f"{kind}: sent but undocumented {sorted(sent[kind] - documented[kind])}, "
            f"documented but never sent {sorted(documented[kind] - sent[kind])}"
        )
