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
    if section == "streams":
        raw["streams"] = [{"id": "a", "url": "sample:bikes.mp4", "zz_unknown": 1}]
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
        heading = re.match(r"`([\w.]+)`", block)
        if not heading:
            continue
        name = heading.group(1)
        rows = re.findall(r"^\| `(\w+)` \|", block, flags=re.M)
        if not rows:  # publish.curve: documented by its example
            example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", block, re.S).group(1))
            rows = list(example["publish"]["curve"])
        sections[name] = set(rows)
    return sections


def test_every_config_key_is_documented_and_every_documented_key_exists():
    documented = documented_keys()
    assert set(documented) == accepted_keys("") | {"publish.curve"}, sorted(documented)
    for section, keys in documented.items():
        assert keys == accepted_keys(section), (
            f"{section}: undocumented {sorted(accepted_keys(section) - keys)}, "
            f"documented but unknown {sorted(keys - accepted_keys(section))}")
