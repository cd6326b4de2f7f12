"""sd_notify over real unix datagram sockets, and the watchdog's judgement of a wedged run."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import pytest

from streams.cli.systemd import JournalFormatter, Notifier, Watchdog, summary_line

SNAPSHOT = {
    "streams": [
        {"stream": "a", "state": "live", "fps": 5.0},
        {"stream": "b", "state": "live", "fps": 4.5},
        {"stream": "c", "state": "reconnecting", "fps": 0.0},
    ]
}


@pytest.fixture
def listener(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(1.0)
    yield sock, str(tmp_path / "notify")
    sock.close()


def received(sock: socket.socket) -> list[str]:
    sock.settimeout(0.2)
    messages = []
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except TimeoutError:
        return messages


def test_notify_sends_key_value_lines_in_one_datagram(listener):
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.send(READY=1, STATUS="2/2 streams live")
    assert sock.recv(4096) == b"READY=1\nSTATUS=2/2 streams live"


def test_notify_reaches_an_abstract_socket():
    name = f"streams-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(1.0)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send(WATCHDOG=1)
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent_and_a_gone_manager_does_not_raise(tmp_path):
    assert not Notifier({}).send(READY=1)
    assert not Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")}).send(READY=1)


def test_watchdog_interval_is_for_this_process_only():
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_s == 30.0
    mine = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert Notifier(mine).watchdog_s == 30.0
    theirs = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(theirs).watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_s is None


def test_watchdog_pings_while_the_run_moves_and_stops_when_it_is_wedged(listener, caplog):
    sock, path = listener
    watchdog = Watchdog(Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}), False)
    watchdog.beat()  # not running yet: loading the engine
    assert received(sock) == ["WATCHDOG=1\nSTATUS=starting: loading the model and engine"]
    stalled = [0.05]
    watchdog.running(lambda: stalled[0], lambda: SNAPSHOT)
    watchdog.beat()
    assert received(sock) == ["WATCHDOG=1\nSTATUS=2/3 streams live, 9.5 frames/s, 1 reconnecting"]
    stalled[0] = 1.5  # over half of WatchdogSec=2
    with caplog.at_level(logging.ERROR):
        watchdog.beat()
        watchdog.beat()
    messages = received(sock)
    assert messages and all("WATCHDOG" not in m for m in messages), messages
    assert messages[0] == "STATUS=wedged: no batch loop for 2 s; watchdog pings stopped"
    assert len([r for r in caplog.records if "wedged" in r.getMessage()]) == 1  # logged once
    stalled[0] = 0.01
    watchdog.beat()
    assert received(sock)[0].startswith("WATCHDOG=1\n")


def test_summary_line_counts_states_and_frames():
    assert summary_line(SNAPSHOT) == "2/3 streams live, 9.5 frames/s, 1 reconnecting"


def test_journal_lines_carry_the_syslog_priority():
    formatter = JournalFormatter()
    record = logging.LogRecord("streams.x", logging.WARNING, "f", 1, "a\nb", None, None)
    assert formatter.format(record) == "<4>streams.x: a\n<4>b"
