"""``python -m streams view``: the page on its own over publishers, its argument errors."""

from __future__ import annotations

import signal
import socket

import httpx

from tests.helpers import free_port, run_cli, start_cli, wait_until


def test_view_serves_the_page_until_ctrl_c():
    port = free_port()
    process = start_cli("view", f"tcp://127.0.0.1:{free_port()}", "--port", str(port))
    try:

        def page() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        assert wait_until(page, 30), process.output()[-2000:]
        assert "view.js" in httpx.get(f"http://127.0.0.1:{port}/").text
        script = httpx.get(f"http://127.0.0.1:{port}/view/static/view.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert httpx.get(f"http://127.0.0.1:{port}/view/streams").json() == []
        assert httpx.get(f"http://127.0.0.1:{port}/view/static/x.js").status_code == 404
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def test_view_argument_errors_are_one_line():
    port = run_cli("view", "tcp://127.0.0.1:5555", "--port", "70000", timeout=60)
    assert port.returncode == 2 and "argument --port" in port.stderr, port.stderr
    assert "Traceback" not in port.stderr
    bad = run_cli("view", "notanendpoint", "--port", str(free_port()), timeout=60)
    assert bad.returncode == 2 and "notanendpoint" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_cli("view", "tcp://127.0.0.1:5555", "--port", str(port), timeout=60)
    assert busy.returncode == 2 and f"127.0.0.1:{port}" in busy.stderr, busy.stderr
    assert "Traceback" not in busy.stderr
