"""One picture decoded on the CPU from a ring's cut: the snapshot of a frame that NVDEC
decoded (its pixels stayed on the GPU and went back to the decoder before its events were
known)."""

from __future__ import annotations

from typing import Any

import numpy as np

from streams.capture.packet_ring import Cut


def decode_frame_at(cut: Cut, pts_s: float) -> np.ndarray:
    """The picture shown at ``pts_s`` (the nearest), decoded on the CPU from a cut that
    starts at a keyframe: BGR uint8."""
    import av

    template = cut.template
    context = av.CodecContext.create(template.codec, "r")
    if template.extradata:
        context.extradata = template.extradata
    seconds = {e.pts: e.pts_s for e in cut.entries}
    best: tuple[float, Any] | None = None
    packets = [av.Packet(bytes(e.packet)) for e in cut.entries]
    for entry, packet in zip(cut.entries, packets):
        packet.pts, packet.dts = entry.pts, entry.dts
        packet.time_base = template.time_base
    for packet in [*packets, None]:
        try:
            pictures = context.decode(packet)
        except av.FFmpegError:
            continue
        for picture in pictures:
            shown = seconds.get(picture.pts)
            if shown is None:
                continue
            gap = abs(shown - pts_s)
            if best is None or gap < best[0]:
                best = (gap, picture.to_ndarray(format="bgr24"))
    if best is None:
        raise ValueError(f"no picture in the ring decodes at {pts_s:.2f} s")
    return best[1]
