#!/usr/bin/python3
"""A small live RTSP "camera" for tests: one H.264 MP4 file, looped forever, paced in real time.

Run it with the SYSTEM Python (gi and the GStreamer RTSP server are Debian packages, not pip ones):

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 --path /cam1 --file clip.mp4

Prints ``READY rtsp://127.0.0.1:PORT/PATH`` on stdout once the port listens (``--port 0`` picks a
free port and prints it), then runs until killed.

Why two pipelines instead of ``filesrc ! qtdemux ! rtph264pay`` in the RTSP factory:
  * a file pipeline is seekable, and gst-rtsp-server honours every client's ``PLAY Range: npt=0-``
    with a flushing seek, so a second client joining a shared media rewinds it for everybody;
  * qtdemux's EOS cannot be dropped and undone (the EOS flag sticks on its source pad), so looping
    inside the RTSP pipeline needs flushing seeks, which reset running time and RTP timestamps.
So a private *producer* pipeline plays the file in real time and loops it seamlessly with segment
seeks, and each RTSP media is a *live* ``appsrc`` fed from it: clients join the live point like a
real camera, at the next keyframe, and nothing they send can seek the source.
"""

import argparse
import os
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer

LATE_NS = 200 * Gst.MSECOND  # a sample this late (the process was frozen) is dropped, not sent


class Camera:
    """Producer pipeline + the set of live appsrcs (one per RTSP media) it feeds."""

    def __init__(self, path: str):
        # h264parse config-interval=-1 puts SPS/PPS in front of every IDR (late joiners decode at
        # once); appsink sync=true paces the file in real time against the system clock.
        self.pipeline = Gst.parse_launch(
            f'filesrc location="{GLib.strescape(path)}" ! qtdemux ! h264parse config-interval=-1 '
            "! video/x-h264,stream-format=byte-stream,alignment=au "
            "! appsink name=out sync=true max-buffers=2 emit-signals=true"
        )
        self.pipeline.get_by_name("out").connect("new-sample", self.on_sample)
        # Timestamps are moved from this pipeline to the RTSP ones through clock time, so all
        # of them must run on one clock.
        self.clock = Gst.SystemClock.obtain()
        self.pipeline.use_clock(self.clock)
        self.lock = threading.Lock()
        self.sources = {}  # appsrc -> True while it waits for a keyframe
        self.caps = None

    def start(self) -> None:
        # Loop: a SEGMENT seek makes qtdemux post SEGMENT_DONE instead of EOS at the end of the
        # file; a non-flushing segment seek back to 0 then continues without a gap (running time
        # keeps growing), which is the standard seamless loop.
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)
        self.pipeline.set_state(Gst.State.PAUSED)
        if self.pipeline.get_state(10 * Gst.SECOND)[0] != Gst.StateChangeReturn.SUCCESS:
            msg = bus.pop_filtered(Gst.MessageType.ERROR)
            why = msg.parse_error()[0].message if msg else "timed out"
            sys.exit(f"ERROR cannot play the file (an MP4 with H.264 video is needed): {why}")
        self.caps = self.pipeline.get_by_name("out").get_static_pad("sink").get_current_caps()
        self.rewind(Gst.SeekFlags.FLUSH)
        self.pipeline.set_state(Gst.State.PLAYING)

    def rewind(self, flags=Gst.SeekFlags.NONE) -> None:
        self.pipeline.seek(
            1.0,
            Gst.Format.TIME,
            flags | Gst.SeekFlags.SEGMENT,
            Gst.SeekType.SET,
            0,
            Gst.SeekType.NONE,
            -1,
        )

    def on_message(self, _bus, msg) -> None:
        if msg.type == Gst.MessageType.SEGMENT_DONE:
            self.rewind()
        elif msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print(f"ERROR producer: {err.message} ({dbg})", file=sys.stderr, flush=True)
            os._exit(3)

    def on_sample(self, sink) -> Gst.FlowReturn:
        """Producer streaming thread: forward one access unit to every client-facing appsrc."""
        sample = sink.emit("pull-sample")
        buf, seg = sample.get_buffer(), sample.get_segment()
        base = self.pipeline.get_base_time()

        def clock_time(ts):  # when the producer plays this timestamp, on the shared clock
            rt = seg.to_running_time(Gst.Format.TIME, ts) if ts != Gst.CLOCK_TIME_NONE else ts
            return None if rt == Gst.CLOCK_TIME_NONE else rt + base

        pts, dts = clock_time(buf.pts), clock_time(buf.dts)
        if pts is None:
            return Gst.FlowReturn.OK  # outside the segment: nothing to show
        late = self.clock.get_time() - pts > LATE_NS
        keyframe = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
        with self.lock:
            for src, need_key in list(self.sources.items()):
                if late:  # frozen by SIGSTOP: skip the backlog, resume at the next keyframe
                    self.sources[src] = True
                    continue
                if need_key and not keyframe:
                    continue
                if src.get_state(0)[1] != Gst.State.PLAYING:
                    continue  # its base time is not valid yet
                self.sources[src] = False
                out = buf.copy()  # new metadata, shared memory
                # The same clock time, as running time of the RTSP pipeline (never negative).
                out.pts = max(0, pts - src.get_base_time())
                out.dts = Gst.CLOCK_TIME_NONE if dts is None else max(0, dts - src.get_base_time())
                src.emit("push-buffer", out)
        return Gst.FlowReturn.OK

    def add_media(self, media: GstRtspServer.RTSPMedia) -> None:
        """RTSP server thread: a new (shared) media was created for the first client."""
        media.set_clock(self.clock)
        src = media.get_element().get_by_name("src")
        src.set_property("caps", self.caps)
        with self.lock:
            self.sources[src] = True
        media.connect("unprepared", lambda _m: self.remove(src))

    def remove(self, src) -> None:
        with self.lock:
            self.sources.pop(src, None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True, help="0 picks a free port")
    ap.add_argument("--path", default="/cam", help="mount point, e.g. /cam1")
    ap.add_argument("--file", required=True, help="MP4 with an H.264 video track")
    ap.add_argument("--address", default="127.0.0.1")
    ap.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when stdin closes (the parent holds a pipe: dies with it)",
    )
    args = ap.parse_args()
    path = "/" + args.path.lstrip("/")

    Gst.init(None)
    camera = Camera(args.file)
    camera.start()

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    # A live source: not seekable, so clients join the live point and never rewind it.
    factory.set_launch(
        "( appsrc name=src is-live=true format=time max-buffers=30 leaky-type=downstream "
        "! rtph264pay name=pay0 pt=96 )"
    )
    factory.set_shared(True)  # one media for all clients of this mount
    factory.connect("media-configure", lambda _f, media: camera.add_media(media))
    server.get_mount_points().add_factory(path, factory)

    # attach() binds and listens (GLib sets SO_REUSEADDR, so a restart on the same port works
    # while old connections sit in TIME_WAIT); it returns 0 when the port cannot be bound.
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on {args.address}:{args.port}", file=sys.stderr, flush=True)
        return 2
    print(f"READY rtsp://{args.address}:{server.get_bound_port()}{path}", flush=True)
    if args.exit_on_stdin_eof:
        # Never outlive the test process, even if it is SIGKILLed before its teardown.
        GLib.io_add_watch(
            sys.stdin.fileno(),
            GLib.PRIORITY_DEFAULT,
            GLib.IOCondition.IN | GLib.IOCondition.HUP,
            lambda fd, _cond: bool(os.read(fd, 4096)) or os._exit(0),
        )
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
