"""``streams ctl list|add|remove``: a thin client of a running ``streams run``'s REST API.

Standard library only (urllib): the client needs nothing the server's API does not say.
Every failure is one line (the server's ``detail``, e.g. the config error of a bad entry)
and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit

from streams.cli.usage import UsageError
from streams.errors import StreamsError

DEFAULT_URL = "http://127.0.0.1:9108"
URL_ENV = "STREAMS_API_URL"
TOKEN_ENV = "STREAMS_API_TOKEN"  # streams.config.TOKEN_ENV, without importing the config
TIMEOUT_S = 60.0  # a removal waits for the stream's worker to leave


class CtlError(StreamsError):
    """The API refused, or could not be reached."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV, DEFAULT_URL),
        help=f"the server (default: ${URL_ENV}, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token", help=f"bearer token for changes (default: ${TOKEN_ENV}; http.token)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the streams, their state and figures")
    listing.add_argument("--json", action="store_true", help="the API's JSON as it is")
    add = actions.add_parser("add", help="add a stream (validated as a config entry)")
    add.add_argument("id")
    add.add_argument(
        "source", metavar="URL", help="rtsp://..., a file path (on the server) or sample:NAME"
    )
    add.add_argument("--fps", type=float, help="keep at most this many frames per second")
    add.add_argument("--loop", action="store_true", help="play a file again at its end")
    add.add_argument("--pace", choices=("realtime", "none"))
    add.add_argument("--decoder", choices=("auto", "opencv", "nvdec"))
    add.add_argument(
        "--entry",
        help="more keys as a JSON object (zones, lines, tracking), merged into the entry",
    )
    remove = actions.add_parser("remove", help="remove a stream (it publishes ended)")
    remove.add_argument("id")


def run(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV) or None
    base = args.url.rstrip("/")
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).hostname:
        raise UsageError("--url", f"expected http://HOST:PORT, got {args.url!r}")
    if args.action == "list":
        streams = _call("GET", f"{base}/api/streams", None, token)
        if args.json:
            print(json.dumps(streams, indent=2))
        else:
            _print_table(streams)
        return 0
    if args.action == "add":
        entry: dict[str, Any] = {"id": args.id, "url": args.source}
        for key in ("fps", "pace", "decoder"):
            if getattr(args, key) is not None:
                entry[key] = getattr(args, key)
        if args.loop:
            entry["loop"] = True
        if args.entry:
            try:
                extra = json.loads(args.entry)
            except ValueError as err:
                raise CtlError(f"--entry: not valid JSON ({err})") from None
            if not isinstance(extra, dict):
                raise CtlError("--entry: expected a JSON object of stream keys")
            entry.update(extra)
        stream = _call("POST", f"{base}/api/streams", entry, token)
        print(f"added {stream['id']}: {stream['state']}")
        return 0
    removed = _call("DELETE", f"{base}/api/streams/{_quote(args.id)}", None, token)
    print(f"removed {removed['removed']}")
    return 0


def _quote(text: str) -> str:
    return quote(text, safe="")


def _call(method: str, url: str, body: Any, token: str | None) -> Any:
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise CtlError(f"{err.code}: {_detail(err)}") from None
    except urllib.error.URLError as err:
        reason = getattr(err.reason, "strerror", None) or err.reason
        raise CtlError(
            f"cannot reach {url}: {reason} (is `streams run` running, with http.port as in "
            f"--url or ${URL_ENV}?)"
        ) from None
    except (TimeoutError, OSError) as err:
        raise CtlError(f"{url}: {err}") from None
    except ValueError:
        raise CtlError(f"{url}: the answer is not JSON; is that a streams server?") from None


def _detail(err: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(err.read()).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str):
        return detail
    return json.dumps(detail) if detail is not None else err.reason


def _print_table(streams: list[dict]) -> None:
    rows = [("id", "state", "fps", "p50 ms", "p99 ms", "drops", "url")]
    for s in streams:
        stats = s.get("stats", {})
        rows.append(
            (
                s["id"],
                s["state"],
                f"{stats.get('fps', 0):.1f}",
                _ms(stats.get("p50_ms")),
                _ms(stats.get("p99_ms")),
                str(stats.get("dropped", 0)),
                s["url"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        sys.stdout.write("  ".join([*cells, row[-1]]) + "\n")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
