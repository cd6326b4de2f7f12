"""The packet ring on bikes.mp4's real packets (PyAV demux, as the file tee reads them): it
always starts at a keyframe, stays within its time and byte bounds over a long run (the file
looped 20 times), and a cut covers the window asked for, in decode order."""

from __future__ import annotations

import av
import pytest

from streams.capture.file_tee import FileTee
from streams.capture.packet_ring import PacketRing

FRAME_S = 0.04  # bikes.mp4: 25 fps


@pytest.fixture(scope="module")
def video(assets):
    return str(assets.videos["bikes.mp4"])


@pytest.fixture(scope="module")
def longest_gop_s(video) -> float:
    with av.open(video) as container:
        stream = container.streams.video[0]
        keys = [
            float(p.pts * stream.time_base)
            for p in container.demux(stream)
            if p.size and p.is_keyframe
        ]
    duration = 250 * FRAME_S
    return max(b - a for a, b in zip(keys, [*keys[1:], duration]))


def entries(ring: PacketRing):
    cut = ring.cut(float("-inf"), float("inf"))
    return [] if cut is None else cut.entries


@pytest.mark.parametrize("follows_frames", [False, True])
def test_the_ring_stays_within_its_time_bound_over_a_long_run(video, longest_gop_s, follows_frames):
    """``follows_frames``: the pipeline finishes each frame right away (1 s of pre-roll), so
    the time bound is what trims, as without it."""
    keep_s = 3.0
    ring = PacketRing(keep_s, 64 << 20, follows_frames=follows_frames)
    tee = FileTee(video, ring, "bikes", loop=True)
    spans, pts = [], 0.0
    try:
        for step in range(20 * 250):  # 20 passes of the file, a picture at a time
            pts = step * FRAME_S
            tee.advance(pts)
            if follows_frames:
                ring.finished(pts - 1.0)
            held = entries(ring)
            if step % 50 == 0 and held:
                assert held[0].key, step  # always from a keyframe
                assert ring.newest_s >= pts - FRAME_S
                assert ring.bytes == sum(e.size for e in held) + ring.retired_bytes
                # What earlier passes left (for late clips): at most the last two of them.
                assert ring.retired_bytes <= 2 * max(e.size for e in held) * 250
            spans.append(ring.span_s())
    finally:
        tee.close()
    # It kept up, across loops: a few frames ahead at most (B-frames: decode order).
    assert pts - FRAME_S <= ring.newest_s <= pts + 5 * FRAME_S
    # Never more than keep_s plus the GOP the oldest kept packet starts (and a frame).
    assert max(spans) <= keep_s + longest_gop_s + FRAME_S, (max(spans), longest_gop_s)
    assert max(spans) >= keep_s  # and it does keep what it is asked to (within a loop)
    assert ring.dropped == 0


def test_frames_not_finished_keep_their_packets_within_the_byte_bound(video):
    ring = PacketRing(2.0, 64 << 20, follows_frames=True)
    tee = FileTee(video, ring, "bikes")
    try:
        tee.advance(6.0)  # nothing finished yet (a pipeline starting): everything kept
        assert entries(ring)[0].pts_s == 0.0
        ring.finished(3.0)  # done up to a frame whose clip would start at 3 s
        tee.advance(9.0)
        held = entries(ring)
        assert held[0].key and held[0].pts_s <= 3.0 < held[0].pts_s + 3.0
        assert ring.span_s() > 2.0 + 3.0  # more than the time bound alone kept
    finally:
        tee.close()


def test_the_ring_stays_within_its_byte_bound_and_counts_what_it_cannot_keep(video):
    ring = PacketRing(60.0, 150_000)  # time would keep everything: bytes decide
    tee = FileTee(video, ring, "bikes", loop=True)
    try:
        for step in range(3 * 250):
            tee.advance(step * FRAME_S)
            assert ring.bytes <= 150_000
            held = entries(ring)
            assert not held or held[0].key
    finally:
        tee.close()
    assert ring.peak_bytes <= 150_000
    assert 0 < ring.span_s() < 10  # a few GOPs, not the whole file
    # A bound below the largest GOP: that GOP is dropped whole (counted), the ring goes on.
    small = PacketRing(60.0, 40_000)
    tee = FileTee(video, small, "bikes")
    try:
        for step in range(250):
            tee.advance(step * FRAME_S)
            assert small.bytes <= 40_000
    finally:
        tee.close()
    assert small.dropped > 0


def test_a_cut_starts_at_the_keyframe_before_its_start_and_ends_at_its_end(video):
    ring = PacketRing(100.0, 64 << 20)
    tee = FileTee(video, ring, "bikes")
    try:
        tee.advance(10.0)
    finally:
        tee.close()
    cut = ring.cut(4.0, 7.0)
    shown = [e.pts_s for e in cut.entries]
    assert cut.entries[0].key and cut.entries[0].pts_s <= 4.0
    assert not any(e.key and 0 < e.pts_s <= 4.0 and e.pts_s > shown[0] for e in cut.entries)
    assert max(s for s in shown if s <= 7.0) == pytest.approx(7.0, abs=1e-6)
    assert cut.entries[-1].pts_s <= 7.0  # decode order ends with the last one shown by 7 s
    dts = [e.dts for e in cut.entries]
    assert dts == sorted(dts)
    # Every picture from the keyframe to 7 s is in it.
    assert sorted(round(s / FRAME_S) for s in shown if s <= 7.0) == list(
        range(round(shown[0] / FRAME_S), round(7.0 / FRAME_S) + 1)
    )
    assert ring.cut(50.0, 60.0) is not None  # past the end: from the last keyframe
    ring.restart(segment=1)
    assert ring.cut(4.0, 7.0) is None  # a new segment: nothing of the old one
    # ... but a clip of the old segment, asked for after the stream moved on, still gets it.
    old = ring.cut(4.0, 7.0, segment=0)
    assert [e.pts_s for e in old.entries] == shown
    ring.restart(segment=2)  # an empty segment sets nothing aside, so segment 0 stays
    assert ring.cut(4.0, 7.0, segment=0) is not None and ring.bytes == ring.retired_bytes
