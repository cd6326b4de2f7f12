"""An MP4 from a :class:`~streams.capture.packet_ring.Cut`, remuxed with PyAV: the packets
as the source sent them (no decoding, no encoding), timestamps made to start at 0."""

from __future__ import annotations

from pathlib import Path

from streams.capture.packet_ring import Cut


def write_clip(cut: Cut, path: Path) -> tuple[float, float]:
    """Write ``cut`` to ``path`` (MP4); returns (first, last) shown time on the frames'
    clock. OSError (a full disk, no permission) and ``av.FFmpegError`` pass up.

    Each packet is copied into a new PyAV packet first: the ring's packets may still be in
    the capture thread's decoder, whose timestamps a remux must not touch.
    """
    import av

    entries = cut.entries
    first = entries[0]
    base = min(e.dts if e.dts is not None else e.pts for e in entries[:4])
    base = min(base, first.pts)
    time_base = cut.template.time_base
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream_from_template(cut.template.stream)
        for entry in entries:
            packet = av.Packet(bytes(entry.packet))
            packet.stream = stream
            packet.time_base = time_base
            packet.pts = entry.pts - base
            packet.dts = (entry.dts if entry.dts is not None else entry.pts) - base
            packet.is_keyframe = entry.key
            out.mux(packet)
    shown = [e.pts_s for e in entries]
    return min(shown), max(shown)
