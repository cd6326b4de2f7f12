"""NVDEC decode-only throughput with N concurrent sessions: the ceiling of the GPU pipeline.

Each session is one thread with its own :class:`~streams.capture.nvdec.NvdecReader`
decoding the clip
in a loop (the demuxer reopens the file, the decoder carries on) and releasing every surface
at once. Readers are opened first and the timed window starts when all are ready, so decoder
creation is not counted. ``--raw`` measures bare PyNvVideoCodec (demux + ``Decode``, no copy
into the reader's surfaces) for comparison.

Usage:
    python -m streams.bench.decode --clip clip1080.mp4 --sessions 1,8,32 --seconds 10
    python -m streams.bench.decode --clip clip1080.mp4 --sessions 32,64 --processes 4
    python -m streams.bench.decode --make-clip clip1080.mp4   # 1080p30 H.264 4 Mbit/s, 20 s

``--make-clip`` encodes ``bikes.mp4`` (the sample asset) scaled to 1920x1080, looped to 20 s,
one IDR every 30 frames and no B-frames, with the static ffmpeg of ``imageio-ffmpeg`` (GPU
hosts often have no system ffmpeg).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from streams.arguments import count, number_in, positive_count, positive_seconds
from streams.errors import USER_ERRORS, StreamsError

logger = logging.getLogger(__name__)

WARMUP_S = 2.0  # decoding before the timed window starts


def make_clip(
    out: Path,
    source: Path | None = None,
    seconds: float = 20.0,
    size_wh: tuple[int, int] = (1920, 1080),
    fps: int = 30,
    bitrate: str = "4M",
) -> Path:
    """Encode the benchmark clip with imageio-ffmpeg's static ffmpeg (libx264)."""
    try:
        import imageio_ffmpeg
    except ImportError as err:
        raise StreamsError("--make-clip needs imageio-ffmpeg: pip install imageio-ffmpeg") from err
    if source is None:
        from streams.assets import fetch_assets

        source = fetch_assets().videos["bikes.mp4"]
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    width, height = size_wh
    cmd = [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-stream_loop",
        "-1",
        "-i",
        str(source),
        "-t",
        f"{seconds:g}",
        "-an",
        "-vf",
        f"scale={width}:{height}:flags=bicubic,fps={fps}",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        "-b:v",
        bitrate,
        "-maxrate",
        bitrate,
        "-bufsize",
        "8M",
        "-g",
        str(fps),
        "-bf",
        "0",
        "-movflags",
        "+faststart",
        str(out),
    ]
    logger.info("encoding %s: %s", out, " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StreamsError(f"ffmpeg failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return out


class _Session(threading.Thread):
    """``per_thread`` decoders decoding the clip in a loop, in turn, until told to stop.

    ``fps`` > 0 paces each decoder like a camera (one frame per 1/fps); ``per_thread`` > 1
    shows what serving several streams from one Python thread saves over one thread each.
    """

    def __init__(
        self,
        clip: Path,
        gpu_id: int,
        raw: bool,
        ready: threading.Barrier,
        start: threading.Event,
        stop: threading.Event,
        fps: float = 0.0,
        per_thread: int = 1,
    ) -> None:
        super().__init__(daemon=True)
        self.clip, self.gpu_id, self.raw = clip, gpu_id, raw
        self.fps, self.per_thread = float(fps), max(1, int(per_thread))
        self._ready_barrier, self._go, self._halt = ready, start, stop
        self.frames = 0
        self.error: str | None = None

    def run(self) -> None:
        opened: list[Any] = []
        try:
            opened = [self._open() for _ in range(self.per_thread)]
        except Exception as err:  # noqa: BLE001 - reported in the results, not raised
            self.error = f"{type(err).__name__}: {err}"
            self._ready_barrier.abort()
            self._close(opened)
            return
        try:
            self._ready_barrier.wait()
            self._go.wait()
            self._decode(opened)
        except threading.BrokenBarrierError:
            pass
        except Exception as err:  # noqa: BLE001
            self.error = f"{type(err).__name__}: {err}"
        finally:
            self._close(opened)

    @staticmethod
    def _close(opened: list[Any]) -> None:
        for one in opened:
            closer = getattr(one, "close", None)
            if closer is not None:
                closer()

    def _open(self) -> Any:
        if not self.raw:
            from streams.capture.nvdec import NvdecReader

            return _Reader(NvdecReader(self.clip, gpu_id=self.gpu_id, loop=True))
        import PyNvVideoCodec as nvc

        demuxer = nvc.CreateDemuxer(filename=str(self.clip))
        decoder = nvc.CreateDecoder(
            gpuid=self.gpu_id, codec=demuxer.GetNvCodecId(), usedevicememory=True
        )
        return _RawDecoder(self.clip, demuxer, decoder)

    def _decode(self, opened: list[Any]) -> None:
        period_s = 1.0 / self.fps if self.fps > 0 else 0.0
        # Cameras are not in step: each session starts at its own phase of the frame period
        # (128 sessions all decoding at the same instant queue on NVDEC, and every one of
        # them then waits, spinning, for its picture).
        due_s = time.monotonic() + random.uniform(0.0, period_s)
        if period_s:
            self._halt.wait(due_s - time.monotonic())
        while not self._halt.is_set():
            for one in opened:
                frames = one.read_counted()
                if frames < 0:
                    return
                self.frames += frames
            if period_s:
                due_s += period_s
                delay_s = due_s - time.monotonic()
                if delay_s > 0:
                    self._halt.wait(delay_s)


class _RawDecoder:
    """Bare PyNvVideoCodec: demux a packet, ``Decode`` it (frames stay in its own buffer)."""

    def __init__(self, clip: Path, demuxer: Any, decoder: Any) -> None:
        import PyNvVideoCodec as nvc

        self._nvc = nvc
        self.clip, self.demuxer, self.decoder = clip, demuxer, decoder
        self._packets = iter(demuxer)

    def read_counted(self) -> int:
        """Frames out of one packet (0 while the decoder holds pictures back)."""
        packet = next(self._packets, None)
        if packet is None:
            self.demuxer = self._nvc.CreateDemuxer(filename=str(self.clip))
            self._packets = iter(self.demuxer)
            return 0
        return len(self.decoder.Decode(packet))


class _Reader:
    """The project's reader: decode into its own surface (a copy), release it at once."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    def read_counted(self) -> int:
        surface = self.reader.read()
        if surface is None:
            return -1
        surface.release()
        return 1

    def close(self) -> None:
        self.reader.close()


def run_sessions(
    clip: Path,
    sessions: int,
    seconds: float,
    gpu_id: int = 0,
    raw: bool = False,
    sync: Any = None,
    fps: float = 0.0,
    per_thread: int = 1,
) -> dict[str, Any]:
    """Decode ``clip`` with ``sessions`` threads for ``seconds``; return the figures.

    ``sync``: called once every session is open, right before the timed window (lines up
    the windows of several processes).
    """
    from engines import cuda

    cuda.set_device(gpu_id)
    free_before, total = cuda.mem_get_info()
    per_thread = max(1, min(int(per_thread), sessions))
    shares = [per_thread] * (sessions // per_thread) + (
        [sessions % per_thread] if sessions % per_thread else []
    )
    ready = threading.Barrier(len(shares) + 1)
    start, stop = threading.Event(), threading.Event()
    threads = [_Session(clip, gpu_id, raw, ready, start, stop, fps, n) for n in shares]
    opened_s = time.perf_counter()
    for thread in threads:
        thread.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        stop.set()
        start.set()
        for thread in threads:
            thread.join()
        errors = sorted({t.error for t in threads if t.error})
        raise StreamsError(f"{sessions} NVDEC sessions could not all open: {errors}") from None
    setup_s = time.perf_counter() - opened_s
    if sync is not None:
        try:
            sync()
        except Exception:
            stop.set()
            start.set()
            for thread in threads:
                thread.join(30)
            raise
    start.set()
    time.sleep(WARMUP_S)  # decoders allocate their surfaces on their first frames
    first = [t.frames for t in threads]
    began, cpu_began = time.perf_counter(), time.process_time()
    time.sleep(seconds)
    counts = [t.frames - f for t, f in zip(threads, first)]
    elapsed, cpu_s = time.perf_counter() - began, time.process_time() - cpu_began
    free_during, _ = cuda.mem_get_info()  # decoders allocate their surfaces on first frames
    stop.set()
    for thread in threads:
        thread.join(30)
    errors = sorted({t.error for t in threads if t.error})
    per_session = [c / elapsed / t.per_thread for c, t in zip(counts, threads)]
    return {
        "sessions": sessions,
        "mode": "raw" if raw else "reader",
        "paced_fps": fps,
        "sessions_per_thread": per_thread,
        "seconds": round(elapsed, 3),
        "frames": sum(counts),
        "total_fps": round(sum(counts) / elapsed, 1),
        "session_fps_min": round(min(per_session), 1),
        "session_fps_mean": round(sum(per_session) / sessions, 1),
        "setup_s": round(setup_s, 2),
        # The whole process's CPU (every thread, native code included) per decoded frame:
        # what one camera's decoding costs a core, before any pipeline work.
        "cpu_pct": round(100.0 * cpu_s / elapsed, 1),
        "cpu_ms_per_frame": round(1000.0 * cpu_s / max(sum(counts), 1), 3),
        "gpu_mem_mib": round((free_before - free_during) / 2**20, 1),
        "gpu_mem_total_mib": round(total / 2**20),
        "errors": errors,
    }


def _sessions_process(
    clip: Path,
    sessions: int,
    seconds: float,
    gpu_id: int,
    raw: bool,
    barrier: Any,
    results: Any,
    fps: float,
    per_thread: int,
) -> None:
    try:
        results.put(
            run_sessions(
                clip, sessions, seconds, gpu_id, raw, lambda: barrier.wait(120), fps, per_thread
            )
        )
    except Exception as err:  # noqa: BLE001 - reported by the parent
        barrier.abort()
        results.put({"error": f"{type(err).__name__}: {err}"})


def run_sessions_in_processes(
    clip: Path,
    sessions: int,
    seconds: float,
    gpu_id: int = 0,
    processes: int = 1,
    raw: bool = False,
    fps: float = 0.0,
    per_thread: int = 1,
) -> dict[str, Any]:
    """``sessions`` spread over ``processes`` processes, timed windows lined up.

    Why: one Python process caps decode-only throughput below what NVDEC can do (every
    frame costs some Python under one GIL); the pipeline runs several worker processes, so
    its ceiling is measured the same way.
    """
    if processes <= 1:
        row = run_sessions(clip, sessions, seconds, gpu_id, raw, None, fps, per_thread)
        return {**row, "processes": 1}
    import multiprocessing
    import queue

    spawn = multiprocessing.get_context("spawn")
    shares = [
        sessions // processes + (1 if i < sessions % processes else 0) for i in range(processes)
    ]
    shares = [share for share in shares if share]  # fewer sessions than processes
    barrier, results = spawn.Barrier(len(shares)), spawn.Queue()
    workers = [
        spawn.Process(
            target=_sessions_process,
            daemon=True,
            args=(clip, share, seconds, gpu_id, raw, barrier, results, fps, per_thread),
        )
        for share in shares
    ]
    for worker in workers:
        worker.start()
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds + WARMUP_S + 300
    while len(rows) < len(workers) and time.monotonic() < deadline:
        try:
            rows.append(results.get(timeout=1.0))
        except queue.Empty:
            dead = [w for w in workers if w.exitcode not in (None, 0)]
            if dead:  # died without a word (a crash in the driver): do not wait for it
                barrier.abort()
                rows.extend(
                    {"error": f"decoding process exited with code {w.exitcode}"}
                    for w in dead
                    if len(rows) < len(workers)
                )
                break
    for worker in workers:
        worker.join(30)
    errors = sorted(
        {r["error"] for r in rows if "error" in r} | {e for r in rows for e in r.get("errors", [])}
    )
    rows = [r for r in rows if "error" not in r]
    if not rows:
        raise StreamsError(f"no decoding process ran: {errors}")
    elapsed = max(r["seconds"] for r in rows)
    total_fps = sum(r["total_fps"] for r in rows)
    return {
        "sessions": sum(r["sessions"] for r in rows),
        "mode": rows[0]["mode"],
        "paced_fps": fps,
        "sessions_per_thread": rows[0]["sessions_per_thread"],
        "processes": len(workers),
        "seconds": elapsed,
        "frames": sum(r["frames"] for r in rows),
        "total_fps": round(total_fps, 1),
        "session_fps_min": min(r["session_fps_min"] for r in rows),
        "session_fps_mean": round(total_fps / sum(r["sessions"] for r in rows), 1),
        "setup_s": max(r["setup_s"] for r in rows),
        "cpu_pct": round(sum(r["cpu_pct"] for r in rows), 1),
        "cpu_ms_per_frame": round(
            sum(r["cpu_pct"] * r["seconds"] for r in rows)
            * 10.0
            / max(sum(r["frames"] for r in rows), 1),
            3,
        ),
        # Every process sees the whole GPU's free memory, the others' decoders included.
        "gpu_mem_mib": max(r["gpu_mem_mib"] for r in rows),
        "gpu_mem_total_mib": rows[0]["gpu_mem_total_mib"],
        "errors": errors,
    }


def _clip_info(clip: Path) -> dict[str, Any]:
    import cv2

    cap = cv2.VideoCapture(str(clip))
    try:
        return {
            "clip": str(clip),
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            "fps": round(cap.get(cv2.CAP_PROP_FPS), 3),
            "frames": int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
            "bytes": clip.stat().st_size,
        }
    finally:
        cap.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.bench.decode", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--clip", type=Path, help="video to decode (H.264/HEVC in MP4/MKV)")
    parser.add_argument("--sessions", default="1,8,32", help="comma-separated session counts")
    parser.add_argument(
        "--seconds", type=positive_seconds, default=10.0, help="timed window per count"
    )
    parser.add_argument("--gpu", type=count, default=0, help="GPU index (cuda:N)")
    parser.add_argument(
        "--raw",
        action="store_true",
        help="bare PyNvVideoCodec decode, without the reader's surface copy",
    )
    parser.add_argument(
        "--make-clip",
        type=Path,
        metavar="OUT.mp4",
        help="write the 1080p30 H.264 benchmark clip and exit",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=None,
        help="--make-clip input (default: the bikes.mp4 sample)",
    )
    parser.add_argument(
        "--processes",
        type=positive_count,
        default=1,
        help="spread each session count over this many processes",
    )
    parser.add_argument(
        "--fps",
        type=number_in(float, "frames per second", 0),
        default=0.0,
        help="pace each session like a camera at this rate",
    )
    parser.add_argument(
        "--per-thread",
        type=positive_count,
        default=1,
        help="sessions served in turn by one Python thread (default 1: a thread each)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.make_clip:
            out = make_clip(args.make_clip, args.source)
            print(json.dumps(_clip_info(out)))
            return 0
        if args.clip is None:
            parser.error("--clip is required (or --make-clip)")
        if not args.clip.is_file():
            parser.error(f"--clip {args.clip}: file not found")
        from streams.capture.nvdec import nvdec_available

        ok, reason = nvdec_available(args.gpu)
        logger.info("%s", reason)
        if not ok:
            print(f"error: {reason}", file=sys.stderr)
            return 2
        counts = [int(c) for c in args.sessions.split(",") if c.strip()]
        info = _clip_info(args.clip)
        print(
            f"clip {info['clip']}: {info['width']}x{info['height']} @ {info['fps']} fps, "
            f"{info['frames']} frames"
        )
        print(
            f"{'sessions':>8} {'total fps':>10} {'min/session':>12} {'mean/session':>13} "
            f"{'GPU MiB':>8} {'setup s':>8} {'CPU %':>7} {'CPU ms/frame':>13}"
        )
        results = []
        for sessions in counts:
            row = run_sessions_in_processes(
                args.clip,
                sessions,
                args.seconds,
                args.gpu,
                args.processes,
                args.raw,
                args.fps,
                args.per_thread,
            )
            results.append(row)
            print(
                f"{sessions:>8} {row['total_fps']:>10.1f} {row['session_fps_min']:>12.1f} "
                f"{row['session_fps_mean']:>13.1f} {row['gpu_mem_mib']:>8.0f} "
                f"{row['setup_s']:>8.2f} {row['cpu_pct']:>7.1f} {row['cpu_ms_per_frame']:>13.3f}"
                + (f"  errors: {row['errors']}" if row["errors"] else ""),
                flush=True,
            )
        if args.json:
            args.json.write_text(json.dumps({"clip": info, "results": results}, indent=2))
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
