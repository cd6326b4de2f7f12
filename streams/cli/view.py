"""``python -m streams view ENDPOINT...``: the browser view on its own, over running publishers
(one node or several), until Ctrl-C. The hub and page of streams/web on a small HTTP server."""

from __future__ import annotations

import argparse
import errno
import socket
from typing import TYPE_CHECKING

from streams.cli.usage import UsageError

if TYPE_CHECKING:
    from streams.cli.main import _Signals


def run_view(args: argparse.Namespace, signals: _Signals) -> int:
    import zmq

    from streams.cli.subscribe import curve_keys
    from streams.web.hub import Hub
    from streams.web.server import ViewServer, view_app

    server_key, client_key = curve_keys(args)
    hub = Hub(args.endpoints, curve_server_key=server_key, curve_client_key=client_key)
    try:
        hub.start()
    except (zmq.ZMQError, ValueError) as err:
        hub.close()
        raise UsageError("endpoints", f"{' '.join(args.endpoints)}: {err}") from None
    try:
        try:
            server = ViewServer(view_app(hub), args.host, args.port)
        except OSError as err:  # the host is no address here, or the port is taken
            host_wrong = isinstance(err, socket.gaierror) or err.errno == errno.EADDRNOTAVAIL
            argument = "--host" if host_wrong else "--port"
            raise UsageError(argument, str(err.strerror or err)) from None
        print(f"view: {server.url}/ (over {', '.join(args.endpoints)})", flush=True)
        signals.stop.wait()
        hub.close()  # first: open pages and MJPEG clients are told, then the server stops
        server.close()
    finally:
        hub.close()
    return 0
