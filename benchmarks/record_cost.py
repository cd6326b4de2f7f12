"""What recording costs the hot path, measured side by side in one run (docs/benchmarks.md):

* per packet, in the capture thread: PyAV demuxing a file alone, and demuxing it with each
  packet appended to a :class:`~streams.capture.packet_ring.PacketRing` (a network stream's
  cost: its packets are demuxed anyway);
* per picture, for a recording file stream: the second demuxer (:class:`FileTee`) following
  the decoder, beside OpenCV's decode of the same picture (what the stream pays already);
* per batch, in the completer: :meth:`Recorder.seen` for a batch of recording streams with
  no event (the latest-frame references every batch keeps).

    python benchmarks/record_cost.py --video ~/.cache/streams/videos/bikes.mp4 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402
import cv2  # noqa: E402

from processors.detections import Detections  # noqa: E402
from streams.capture.file_tee import FileTee  # noqa: E402
from streams.capture.frames import Frame  # noqa: E402
from streams.capture.packet_ring import PacketRing  # noqa: E402
from streams.config import parse_config  # noqa: E402
from streams.record.recorder import Recorder  # noqa: E402


def demux_us(video: str, ring: PacketRing | None, passes: int = 5) -> float:
    """Microseconds per packet to demux the file ``passes`` times over (and append each
    packet to ``ring``, which holds its default 12 s: steady state after the first)."""
    count = 0
    elapsed = 0.0
    for n in range(passes):
        with av.open(video) as container:
            stream = container.streams.video[0]
            time_base = float(stream.time_base)
            offset = n * 10.0
            began = time.perf_counter()
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if ring is not None:
                    ring.add(packet, packet.pts * time_base + offset)
                count += 1
            elapsed += time.perf_counter() - began
    return elapsed * 1e6 / count


def tee_and_decode_us(video: str) -> tuple[float, float]:
    """Microseconds per picture: the tee following OpenCV, and OpenCV's grab + retrieve."""
    ring = PacketRing(12.0, 64 << 20)
    tee = FileTee(video, ring, "bench")
    cap = cv2.VideoCapture(video, cv2.CAP_FFMPEG)
    tee_s = decode_s = 0.0
    count = 0
    try:
        while True:
            began = time.perf_counter()
            if not cap.grab():
                break
            cap.retrieve()
            pts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            mid = time.perf_counter()
            tee.advance(pts)
            tee_s += time.perf_counter() - mid
            decode_s += mid - began
            count += 1
    finally:
        tee.close()
        cap.release()
    return tee_s * 1e6 / count, decode_s * 1e6 / count


def seen_us(streams: int, rounds: int = 2000) -> float:
    """Microseconds per batch of ``streams`` recording frames without events."""
    with tempfile.TemporaryDirectory() as directory:
        config = parse_config(
            {
                "streams": [
                    {"id": f"cam{i}", "url": "rtsp://cam.invalid/1"} for i in range(streams)
                ],
                "record": {"enabled": True, "dir": directory},
            }
        )
        recorder = Recorder(config, lambda topic, message: True, ("person",))
        image = np.zeros((1080, 1920, 3), np.uint8)
        det = Detections(
            np.zeros((5, 4), np.float32), np.ones(5, np.float32), np.zeros(5, np.int32)
        )
        frames = [Frame(f"cam{i}", 0, 0.0, 0.0, 0.0, 0.0, image) for i in range(streams)]
        decoded = [det] * streams
        ids = [np.arange(5)] * streams
        began = time.perf_counter()
        for _ in range(rounds):
            recorder.seen(frames, decoded, ids, [])
        return (time.perf_counter() - began) * 1e6 / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", required=True)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--streams", type=int, default=32, help="frames per batch for seen()")
    args = parser.parse_args()
    bare, ringed, tee, decode, seen = [], [], [], [], []
    for _ in range(args.repeats):  # interleaved, so both sides see the same machine load
        bare.append(demux_us(args.video, None))
        ringed.append(demux_us(args.video, PacketRing(12.0, 64 << 20)))
        t, d = tee_and_decode_us(args.video)
        tee.append(t)
        decode.append(d)
        seen.append(seen_us(args.streams))
    med = statistics.median
    print(f"video: {args.video}, {args.repeats} repeats (medians)")
    print(f"demux per packet:            {med(bare):7.2f} us")
    print(
        f"demux + ring.add per packet: {med(ringed):7.2f} us "
        f"(+{med(ringed) - med(bare):.2f} us, x{med(ringed) / med(bare):.2f})"
    )
    print(
        f"file tee per picture:        {med(tee):7.2f} us "
        f"(OpenCV decode per picture {med(decode):.0f} us: {100 * med(tee) / med(decode):.1f} %)"
    )
    print(f"Recorder.seen, batch of {args.streams}:  {med(seen):7.2f} us")


if __name__ == "__main__":
    main()
