"""The one capture loop (streams.capture.worker) against scripted sources.

Sources here are fakes that follow the Source protocol, so the policy (status events, the
NVDEC -> CPU fallback, reconnects, looping, the fps cap, handing NVDEC surfaces back) is
checked the same on a host without a GPU as on one with it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import streams.capture.worker as worker_module
from streams.capture.ffmpeg_log import DecoderLog
from streams.capture.source import DecoderRefused, Picture
from streams.capture.worker import CaptureContext, CaptureWorker
from streams.config import CaptureConfig, StreamConfig
from streams.errors import CaptureError
from streams.runtime.board import FrameBoard
from streams.runtime.stats import StreamStats

FILE = "/videos/clip.mp4"
CAMERA = "rtsp://admin:hunter2@10.0.0.5/live"
POLICY = CaptureConfig(
    open_timeout_s=1, read_timeout_s=2, reconnect_initial_s=0.01, reconnect_max_s=0.04
)


@dataclass
class FakeSurface:
    width: int = 64
    height: int = 48
    released: int = 0

    def release(self, stream=None) -> None:
        self.released += 1


@dataclass
class FakeSource:
    """Pictures at ``pts`` (seconds); then the end, ``read_error``, or another pass."""

    decoder: str = "opencv"
    pts: tuple[float, ...] = (0.0, 0.04, 0.08)
    open_error: CaptureError | None = None
    read_error: CaptureError | None = None
    passes: int = 1
    stalled: bool = False
    log_lines: tuple[str, ...] = ()
    skips: int = 0
    log: DecoderLog = field(default_factory=DecoderLog)
    surfaces: list[FakeSurface] = field(default_factory=list)
    closed: bool = False
    wait_at_end: threading.Event | None = None  # a live camera: the end comes with ``stop``

    @property
    def device_frames(self) -> bool:
        return self.decoder == "nvdec"

    def open(self) -> None:
        for line in self.log_lines:
            self.log.add(line)
        if self.open_error is not None:
            raise self.open_error
        self._left = list(self.pts)

    def read(self) -> Picture | None:
        if not self._left:
            if self.wait_at_end is not None:
                self.wait_at_end.wait(5)
            if self.read_error is not None:
                raise self.read_error
            return None
        pts_s = self._left.pop(0)
        if self.device_frames:
            surface = FakeSurface()
            self.surfaces.append(surface)
            return Picture(pts_s, time.monotonic(), surface=surface)
        return Picture(pts_s, time.monotonic(), image_bgr=np.zeros((48, 64, 3), np.uint8))

    def rewind(self) -> bool:
        self.passes -= 1
        self._left = list(self.pts) if self.passes > 0 else []
        return self.passes > 0

    def close(self) -> None:
        self.closed = True


class Script:
    """Hands out the scripted sources in order (the last one again when they run out) and
    records which decoder the worker asked for each time."""

    def __init__(self, *sources: FakeSource) -> None:
        self.sources = list(sources)
        self.asked: list[tuple[str, str]] = []

    def __call__(self, url, kind, decoder, options):
        self.asked.append((kind, decoder))
        source = self.sources.pop(0) if len(self.sources) > 1 else self.sources[0]
        assert source.decoder == decoder, (source.decoder, decoder)
        return source


@dataclass
class Run:
    statuses: list[tuple[str, dict]] = field(default_factory=list)
    frames: list = field(default_factory=list)
    worker: CaptureWorker | None = None

    def states(self) -> list[str]:
        return [state for state, _ in self.statuses]


def run_worker(
    monkeypatch,
    script: Script,
    url: str = FILE,
    nvdec: bool = False,
    until: Callable[[Run], bool] | None = None,
    stop: threading.Event | None = None,
    **stream,
) -> Run:
    """Run one worker until it ends (or ``until`` holds, then stop it), taking its frames."""
    monkeypatch.setattr(worker_module, "make_source", script)
    board, stop, run = FrameBoard(), stop or threading.Event(), Run()
    context = CaptureContext(
        POLICY,
        board,
        lambda _id, state, **detail: run.statuses.append((state, detail)),
        stop,
        0 if nvdec else None,
    )
    config = StreamConfig(id="cam", url=url, **{"pace": "none", **stream})
    run.worker = CaptureWorker(config, url, StreamStats("cam"), context)
    run.worker.start()
    deadline = time.monotonic() + 10
    while run.worker.thread.is_alive() and time.monotonic() < deadline:
        if until is not None and until(run):
            break
        for frame in board.take_batch(1, 0.0, 0.02):
            run.frames.append(frame)
            frame.release()
    stop.set()
    board.close()
    run.worker.thread.join(5)
    assert not run.worker.thread.is_alive()
    return run


def test_a_file_plays_once_and_ends(monkeypatch):
    run = run_worker(monkeypatch, Script(FakeSource()))
    assert run.states() == ["connecting", "live", "ended"]
    assert run.statuses[1][1] == {"width": 64, "height": 48, "decoder": "opencv"}
    assert [f.seq for f in run.frames] == [0, 1, 2]
    assert [f.pts_s for f in run.frames] == [0.0, 0.04, 0.08]
    assert run.worker.stats.decoded == 3


def test_a_looping_file_keeps_pts_increasing_and_says_live_once(monkeypatch):
    run = run_worker(monkeypatch, Script(FakeSource(passes=3)), loop=True)
    assert run.states() == ["connecting", "live", "ended"]
    pts = [f.pts_s for f in run.frames]
    assert len(pts) == 9 and pts == sorted(pts) and len(set(pts)) == 9
    assert [f.seq for f in run.frames] == list(range(9))


def test_the_fps_cap_keeps_by_pts_and_gives_skipped_surfaces_back(monkeypatch):
    nvdec = FakeSource("nvdec", pts=tuple(i * 0.04 for i in range(25)))
    run = run_worker(monkeypatch, Script(nvdec), nvdec=True, fps=5)
    assert [round(f.pts_s, 2) for f in run.frames] == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert all(s.released == 1 for s in nvdec.surfaces)  # kept ones by the test, once each
    assert run.statuses[1][1]["decoder"] == "nvdec" and nvdec.closed


def test_a_file_nvdec_refuses_decodes_with_opencv_and_says_why(monkeypatch, caplog):
    refused = FakeSource("nvdec", open_error=DecoderRefused("clip.mp4: NVDEC cannot open it"))
    script = Script(refused, FakeSource())
    with caplog.at_level(logging.WARNING):
        run = run_worker(monkeypatch, script, nvdec=True)
    assert script.asked == [("file", "nvdec"), ("file", "opencv")]
    assert run.states() == ["connecting", "live", "ended"]
    assert run.statuses[1][1]["decoder"] == "opencv"
    assert (
        "stream cam: NVDEC cannot decode this file (clip.mp4: NVDEC cannot open it); "
        "decoding with OpenCV instead" in caplog.text
    )


def test_a_file_nvdec_decodes_nothing_from_falls_back_too(monkeypatch, caplog):
    script = Script(FakeSource("nvdec", pts=()), FakeSource())
    with caplog.at_level(logging.WARNING):
        run = run_worker(monkeypatch, script, nvdec=True)
    assert script.asked == [("file", "nvdec"), ("file", "opencv")]
    assert run.states() == ["connecting", "live", "ended"]
    assert "NVDEC cannot decode this file (it decoded no frame)" in caplog.text


def test_a_file_that_cannot_open_fails_with_what_ffmpeg_said(monkeypatch):
    broken = FakeSource(
        open_error=CaptureError("stream cam (clip.mp4): cannot open file"),
        log_lines=("[mov,mp4] moov atom not found",),
    )
    run = run_worker(monkeypatch, Script(broken))
    assert run.states() == ["connecting", "failed"]
    assert run.statuses[1][1]["reason"] == (
        "stream cam (clip.mp4): cannot open file; FFmpeg said: [mov,mp4] moov atom not found"
    )


def test_a_file_without_a_decodable_frame_fails(monkeypatch):
    run = run_worker(monkeypatch, Script(FakeSource(pts=())))
    assert run.states() == ["connecting", "failed"]
    assert run.statuses[1][1]["reason"] == (
        "stream cam (/videos/clip.mp4): no decodable frame "
        "(not a video file, or an unsupported codec)"
    )


def reconnects(run: Run) -> list[dict]:
    return [detail for state, detail in run.statuses if state == "reconnecting"]


def test_a_camera_nvdec_refuses_is_decoded_on_the_cpu_for_good(monkeypatch, caplog):
    refused = FakeSource(
        "nvdec",
        open_error=DecoderRefused("rtsp://***@10.0.0.5/live: codec mjpeg is not one NVDEC decodes"),
    )
    script = Script(refused, FakeSource())
    with caplog.at_level(logging.WARNING):
        run = run_worker(
            monkeypatch, script, url=CAMERA, nvdec=True, until=lambda r: len(reconnects(r)) >= 3
        )
    assert script.asked[:3] == [("network", "nvdec"), ("network", "opencv"), ("network", "opencv")]
    assert ("network", "nvdec") not in script.asked[1:]
    assert run.states()[:3] == ["connecting", "live", "reconnecting"]
    assert {d["decoder"] for s, d in run.statuses if s == "live"} == {"opencv"}
    assert caplog.text.count("decoding on the CPU instead") == 1


def test_nvdec_refusing_mid_stream_switches_to_the_cpu_without_a_reconnect(monkeypatch):
    nvdec = FakeSource("nvdec", read_error=DecoderRefused("NVDEC decode failed"))
    script = Script(nvdec, FakeSource())
    run = run_worker(
        monkeypatch, script, url=CAMERA, nvdec=True, until=lambda r: len(reconnects(r)) >= 1
    )
    assert run.states()[:4] == ["connecting", "live", "live", "reconnecting"]
    assert [d["decoder"] for s, d in run.statuses if s == "live"][:2] == ["nvdec", "opencv"]
    assert nvdec.closed
    seqs = [f.seq for f in run.frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_a_camera_that_is_down_reconnects_with_growing_delays_and_ffmpegs_words(monkeypatch):
    down = FakeSource(
        open_error=CaptureError("rtsp://***@10.0.0.5/live: cannot open stream"),
        log_lines=("[tcp] Connection to tcp://admin:hunter2@10.0.0.5 refused",),
    )
    run = run_worker(monkeypatch, Script(down), url=CAMERA, until=lambda r: len(reconnects(r)) >= 4)
    retries = reconnects(run)
    assert [d["attempt"] for d in retries[:4]] == [1, 2, 3, 4]
    assert retries[0]["reason"] == (
        "rtsp://***@10.0.0.5/live: cannot open stream; FFmpeg "
        "said: [tcp] Connection to tcp://***@10.0.0.5 refused"
    )
    assert "hunter2" not in str(run.statuses)
    assert run.worker.stats.reconnects >= 4
    assert "ended" not in run.states()  # the pipeline says so when it stops


def test_frames_reset_the_attempts_and_a_stall_is_named(monkeypatch):
    down = FakeSource(open_error=CaptureError("cannot open stream"))
    script = Script(down, down, FakeSource(stalled=True), FakeSource(pts=()))
    run = run_worker(monkeypatch, script, url=CAMERA, until=lambda r: len(reconnects(r)) >= 4)
    retries = reconnects(run)
    assert [d["attempt"] for d in retries[:4]] == [1, 2, 1, 2]
    assert retries[2]["reason"] == "no frame for 2 s (stalled)"
    assert retries[3]["reason"] == "the stream ended or the connection dropped"
    assert run.worker.stalls == 1


def test_nvdec_frames_are_handed_back_before_the_decoder_closes(monkeypatch):
    """At the end, the batcher takes the last frame before its surface is freed."""
    calls = record_hand_back(monkeypatch)
    nvdec = FakeSource("nvdec")
    nvdec.close = lambda: calls.append(("close",))  # type: ignore[method-assign]
    run = run_worker(monkeypatch, Script(nvdec), nvdec=True)
    assert calls == [("wait_taken", "cam", 5.0), ("close",)]
    assert run.states()[-1] == "ended"


def test_on_stop_an_nvdec_frame_nobody_took_is_dropped_before_the_decoder_closes(monkeypatch):
    calls = record_hand_back(monkeypatch)
    stop = threading.Event()
    nvdec = FakeSource("nvdec", pts=(0.0,), wait_at_end=stop)
    nvdec.close = lambda: calls.append(("close",))  # type: ignore[method-assign]
    run_worker(
        monkeypatch,
        Script(nvdec),
        url=CAMERA,
        nvdec=True,
        stop=stop,
        until=lambda r: bool(r.frames),
    )
    assert calls == [("discard", "cam"), ("close",)]


def record_hand_back(monkeypatch) -> list[tuple]:
    calls: list[tuple] = []
    monkeypatch.setattr(
        FrameBoard,
        "wait_taken",
        lambda self, sid, timeout_s: calls.append(("wait_taken", sid, timeout_s)),
    )
    monkeypatch.setattr(FrameBoard, "discard", lambda self, sid: calls.append(("discard", sid)))
    return calls
