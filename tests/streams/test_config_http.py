"""``http:`` and the API's stream entries (streams/config.py): checked like the rest of the
file, with the same messages; the token comes from the file or $STREAMS_API_TOKEN and is
never shown."""

from __future__ import annotations

import pytest

from streams.config import (
    TOKEN_ENV,
    DuplicateStream,
    add_stream,
    change_stream,
    parse_config,
)
from streams.errors import ConfigError

BASE = {"streams": [{"id": "a", "url": "sample:bikes.mp4"}]}
TOKEN = "0123456789abcdefXYZ"


def config(environ=None, **sections):
    return parse_config({**BASE, **sections}, environ=environ or {})


def test_defaults_serve_on_9108_read_only_and_the_old_metrics_port_is_off():
    parsed = config()
    assert (parsed.http.host, parsed.http.port, parsed.http.token) == ("127.0.0.1", 9108, None)
    assert parsed.metrics.port == 0


def test_the_token_comes_from_the_file_or_the_environment_and_is_never_shown():
    assert config(http={"token": TOKEN}).http.token == TOKEN
    assert config({TOKEN_ENV: TOKEN}).http.token == TOKEN
    assert config({TOKEN_ENV: "x" * 20}, http={"token": TOKEN}).http.token == TOKEN  # file wins
    assert TOKEN not in repr(config(http={"token": TOKEN}))


@pytest.mark.parametrize(
    ("sections", "environ", "message"),
    [
        ({"http": {"port": 70000}}, {}, r"^http\.port: 70000 is out of range"),
        ({"http": {"tls": True}}, {}, r"^http\.tls: unknown key; expected one of host, port"),
        ({"http": {"token": "short"}}, {}, r"^http\.token: 5 characters is too short"),
        ({"http": {"token": "has space 0123456789"}}, {}, r"^http\.token: expected printable"),
        ({}, {TOKEN_ENV: "short"}, r"^\$STREAMS_API_TOKEN: 5 characters is too short"),
        ({"metrics": {"port": 9108}}, {}, r"^metrics\.port: 9108 is also http\.port"),
    ],
)
def test_bad_http_settings_name_the_key(sections, environ, message):
    with pytest.raises(ConfigError, match=message):
        config(environ, **sections)


def test_a_separate_metrics_port_still_works():
    assert config(metrics={"port": 9200}).metrics.port == 9200


@pytest.mark.parametrize(
    "entry",
    [
        {"id": "b", "url": "rtsp://"},
        {"id": "b", "url": "sample:nope.mp4"},
        {"id": "b", "url": "/no/such/file.mp4"},
        {"id": "b", "url": "sample:bikes.mp4", "fps": -1},
        {"id": "b", "url": "sample:bikes.mp4", "zones": [{"name": "z", "points": [[0, 0]]}]},
        {"id": "b", "url": "sample:bikes.mp4", "pace": "fast"},
        {"url": "sample:bikes.mp4"},
        "not a mapping",
    ],
)
def test_an_added_entry_gets_the_message_the_file_would_give(entry):
    with pytest.raises(ConfigError) as from_file:
        parse_config({"streams": [*BASE["streams"], entry]}, environ={})
    with pytest.raises(ConfigError) as from_api:
        add_stream(config(), entry)
    assert str(from_api.value) == str(from_file.value)
    assert str(from_api.value).startswith("streams[1]")


def test_an_added_entry_takes_the_top_level_tracking_and_refuses_a_duplicate():
    tracked = config(tracking={"enabled": True, "high_score": 0.7})
    added = add_stream(tracked, {"id": "b", "url": "sample:bikes.mp4"})
    assert added.streams[1].tracking == tracked.streams[0].tracking
    assert added.http == tracked.http and added.model == tracked.model
    with pytest.raises(DuplicateStream, match=r"^streams\[1\]\.id: duplicate stream id 'a'"):
        add_stream(tracked, {"id": "a", "url": "sample:bikes.mp4"})
    # ${VAR} is not expanded: a client must not read the server's environment.
    with pytest.raises(ConfigError, match=r"file not found: /\$\{HOME\}/x\.mp4"):
        add_stream(tracked, {"id": "c", "url": "/${HOME}/x.mp4"})


def test_a_change_takes_fps_zones_and_lines_only():
    tracked = config(tracking={"enabled": True})
    zone = {"name": "z", "units": "fraction", "points": [[0, 0], [1, 0], [1, 1]]}
    changed = change_stream(tracked, "a", {"fps": 4, "zones": [zone]})
    assert changed.streams[0].fps == 4.0 and changed.streams[0].zones[0].name == "z"
    assert changed.streams[0].url == tracked.streams[0].url
    with pytest.raises(ConfigError, match=r"^streams\[0\]\.url: cannot change in place"):
        change_stream(tracked, "a", {"url": "sample:carphone_pristine.mp4"})
    with pytest.raises(ConfigError, match=r"^streams\[0\]\.colour: unknown key"):
        change_stream(tracked, "a", {"colour": "red"})
    with pytest.raises(ConfigError, match=r"^streams\[0\]\.zones\[0\]\.classes\[0\]: unknown"):
        change_stream(tracked, "a", {"zones": [{**zone, "classes": ["unicorn"]}]})
    with pytest.raises(ConfigError, match=r"^streams\[0\]: expected a mapping"):
        change_stream(tracked, "a", [1])
