"""FFmpeg's lines kept per stream for its reasons (streams.capture.ffmpeg_log)."""

import threading

import av.logging

from streams.capture.ffmpeg_log import DecoderLog, route_pyav


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_keeps_the_last_lines_redacted_and_one_of_a_burst():
    log = DecoderLog(keep=3)
    log.add("[tcp] Connection to rtsp://admin:hunter2@10.0.0.5/live failed\n")
    for _ in range(50):
        log.add("[h264] error while decoding MB 3 4")
    log.add("[rtsp] method DESCRIBE failed: 404 Not Found")
    log.add("   ")
    assert log.recent() == [
        "[tcp] Connection to rtsp://***@10.0.0.5/live failed",
        "[h264] error while decoding MB 3 4",
        "[rtsp] method DESCRIBE failed: 404 Not Found",
    ]
    log.add("[rtsp] four")
    assert len(log.recent()) == 3 and log.recent()[-1] == "[rtsp] four"


def test_explain_adds_only_recent_lines():
    clock = FakeClock()
    log = DecoderLog(recent_s=30.0, clock=clock)
    assert log.explain("cam: dropped") == "cam: dropped"
    log.add("[rtsp] old news")
    clock.now += 31
    log.add("[tcp] Connection refused")
    assert log.explain("cam: dropped") == "cam: dropped; FFmpeg said: [tcp] Connection refused"
    log.clear()
    assert log.explain("cam: dropped") == "cam: dropped"


def test_pyav_lines_go_to_the_log_of_the_thread_that_logged_them():
    mine = DecoderLog()
    route_pyav(mine)
    try:
        av.logging.log(av.logging.ERROR, "tcp", "Connection to tcp://u:secret@h:1 failed")
        other = threading.Thread(
            target=av.logging.log, args=(av.logging.ERROR, "rtsp", "another stream's line")
        )
        other.start()
        other.join()
        av.logging.log(av.logging.DEBUG, "h264", "too chatty to keep")
    finally:
        route_pyav(None)
    av.logging.log(av.logging.ERROR, "tcp", "after the stream closed")
    assert mine.recent() == ["[tcp] Connection to tcp://***@h:1 failed"]
