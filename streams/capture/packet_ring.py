"""A stream's recent compressed packets, for event clips cut without re-encoding.

Why packets and not frames: a clip remuxed from the packets the camera sent costs no encoder
and keeps the source's codec, profile and quality; holding them costs a few MB per stream
(10 s of 4 Mbit/s H.264 is 5 MB) where decoded 1080p frames would cost 3 MB each.

The capture thread appends one reference per packet (the PyAV ``Packet`` it demuxed anyway,
no copy) under a short lock; whole GOPs fall off the old end, so the ring always starts at a
keyframe. It is bounded twice: in time (from the last keyframe at or before ``keep_s``
before the newest packet, or before the start of a clip still waiting for its packets: a
:meth:`hold`, or, for a ring that ``follows_frames``, before the earliest clip start a frame
the pipeline has not finished could still ask for: :meth:`finished`) and in bytes
(``max_bytes``, which wins over holds: the oldest GOPs go first; a single GOP larger than the
bound is dropped whole, and the packets up to the next keyframe with it, counted in
``dropped``). A reader (the recorder's writer thread) takes a
:meth:`cut`: a list of entries of one segment, which it may remux while the ring goes on.

Times: entries carry ``pts_s`` on the clock of the stream's frames (``Frame.pts_s``): the
source gives seconds on its own clock, and :meth:`restart` (a new session, a loop of a file)
sets the offset the capture worker adds to it and empties the ring, since a clip never spans
two segments.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class RingEntry:
    """One compressed packet as demuxed (``packet``: a PyAV ``Packet``), with its original
    timestamps (``pts``/``dts`` in ``time_base`` units; a remux rewrites the packet's own)."""

    packet: Any
    pts: int | None
    dts: int | None
    pts_s: float  # on the frames' clock
    key: bool
    size: int


class CodecTemplate:
    """The codec parameters of the stream the packets came from, owned here.

    A PyAV output stream made from the source's stream (``add_stream_from_template``) on a
    container that is never written: its parameters stay valid after the source's container
    is closed (a reconnect), and a clip's output stream is made from it in turn.
    """

    def __init__(self, stream: Any) -> None:
        import io

        import av

        self._holder = av.open(io.BytesIO(), "w", format="mp4")
        self.stream = self._holder.add_stream_from_template(stream)
        self.time_base = stream.time_base
        self.codec = stream.codec_context.name
        self.extradata = bytes(stream.codec_context.extradata or b"")
        self.width = int(stream.codec_context.width or 0)
        self.height = int(stream.codec_context.height or 0)
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 0.0


def template_of(stream: Any, name: str) -> CodecTemplate | None:
    """The stream's :class:`CodecTemplate`, or None (logged) where PyAV cannot make one: the
    stream then records no clips this session, and decodes as ever."""
    try:
        return CodecTemplate(stream)
    except Exception as err:  # noqa: BLE001 - clips are extra; the stream must not fail
        logger.warning("%s: no clips this session: its codec cannot be remuxed (%s)", name, err)
        return None


@dataclass
class Cut:
    """Entries from one keyframe on, and the codec they need (None: nothing to cut)."""

    entries: list[RingEntry]
    template: CodecTemplate


RETIRED_SEGMENTS = 2  # earlier segments kept aside for late clips (within max_bytes)


def _gops_bytes(gops: list[list[RingEntry]]) -> int:
    return sum(entry.size for gop in gops for entry in gop)


class PacketRing:
    """One stream's packets of the last ``keep_s`` seconds (and more, back to a keyframe).

    Args:
        keep_s: seconds to keep behind the newest packet (clip pre + post + slack).
        max_bytes: the most packet bytes held.
        follows_frames: the recorder says which frames the pipeline has finished
            (:meth:`finished`); until it does, a new run's packets are kept (within
            ``max_bytes``) whatever ``keep_s`` says. Why: packets arrive in real time while
            a frame's events come out of the pipeline later, seconds later under load or at
            start (2026-12-03, H200 under load: a camera clip began at 2.28 s, after its own
            event at 2.24 s, whose pre-roll packets the ring had already let go).
    """

    def __init__(self, keep_s: float, max_bytes: int, follows_frames: bool = False) -> None:
        self.keep_s = float(keep_s)
        self.max_bytes = int(max_bytes)
        self.follows_frames = bool(follows_frames)
        # The earliest clip start an unfinished frame may ask for (frames' clock).
        self._unfinished_s = float("-inf") if follows_frames else float("inf")
        self._lock = threading.Lock()
        self._gops: collections.deque[list[RingEntry]] = collections.deque()
        self._bytes = 0
        self._template: CodecTemplate | None = None
        self._offset_s = 0.0
        self._skipping = True  # until a keyframe: nothing before one can be decoded
        self.segment = 0  # the frames' segment (Frame.segment) the packets now belong to
        # The packets of the segments before this one (a loop, a reconnect), newest last: an
        # event seen near a segment's end gets its clip from them after the stream moved on
        # (the capture thread runs ahead of the completer). Counted in ``bytes``.
        self._retired: collections.deque[tuple[int, list[list[RingEntry]], CodecTemplate]] = (
            collections.deque(maxlen=RETIRED_SEGMENTS)
        )
        self.newest_s = float("-inf")
        self.dropped = 0  # packets not kept because one GOP alone was over max_bytes
        self.peak_bytes = 0
        self._holds: dict[int, float] = {}  # token -> a waiting clip's start (frames' clock)
        self._next_hold = 0

    # --- the capture thread -----------------------------------------------------------------

    def restart(
        self,
        template: CodecTemplate | None = None,
        offset_s: float | None = None,
        segment: int | None = None,
    ) -> None:
        """A new run of packets: the ring starts empty, what it held kept aside for the clips
        of its segment; ``template``: the codec of the packets from now on (a new session),
        ``offset_s``: added to the source's seconds from now on, ``segment``: the frames'
        segment from now on."""
        with self._lock:
            if self._gops and self._template is not None:
                self._retired.append((self.segment, list(self._gops), self._template))
            self._gops.clear()
            self._bytes = sum(_gops_bytes(gops) for _, gops, _ in self._retired)
            if segment is not None:
                self.segment = segment
            self._skipping = True
            self.newest_s = float("-inf")
            if self.follows_frames:
                self._unfinished_s = float("-inf")
            if template is not None:
                self._template = template
            if offset_s is not None:
                self._offset_s = float(offset_s)

    def add(self, packet: Any, seconds: float) -> None:
        """One demuxed packet (a PyAV ``Packet``), ``seconds`` on the source's clock."""
        key = bool(packet.is_keyframe)
        if self._skipping and not key:
            return
        size = packet.size
        entry = RingEntry(packet, packet.pts, packet.dts, seconds + self._offset_s, key, size)
        with self._lock:
            gops = self._gops
            if key:
                self._skipping = False
                gops.append([entry])
            else:
                gops[-1].append(entry)
            self._bytes += size
            if entry.pts_s > self.newest_s:
                self.newest_s = entry.pts_s
            horizon = min(self.newest_s - self.keep_s, self._unfinished_s)
            if self._holds:
                horizon = min(horizon, min(self._holds.values()))
            while len(gops) > 1 and gops[1][0].pts_s <= horizon:
                self._pop_oldest()
            while self._bytes > self.max_bytes and self._retired:
                self._bytes -= _gops_bytes(self._retired.popleft()[1])  # the oldest first
            while self._bytes > self.max_bytes and len(gops) > 1:
                self._pop_oldest()
            if self._bytes > self.max_bytes:  # one GOP over the bound: none of it is kept
                self.dropped += len(gops[0])
                self._pop_oldest()
                self._skipping = True
            if self._bytes > self.peak_bytes:
                self.peak_bytes = self._bytes

    def _pop_oldest(self) -> None:
        gop = self._gops.popleft()
        self._bytes -= sum(entry.size for entry in gop)

    # --- the completer ------------------------------------------------------------------------

    def finished(self, start_s: float) -> None:
        """The pipeline is done with the stream's frames up to one whose clip would start at
        ``start_s`` (its pts minus the clip's pre-roll): later frames' clips start later, so
        packets before it are the time bound's again. One float store, per frame."""
        if start_s > self._unfinished_s:
            self._unfinished_s = start_s

    # --- readers ------------------------------------------------------------------------------

    def hold(self, start_s: float) -> int:
        """Keep the packets from ``start_s`` on (within ``max_bytes``) until :meth:`release`:
        a clip waits for its last packets however fast the stream runs (a file read as fast as
        the pipeline goes covers ``keep_s`` in moments)."""
        with self._lock:
            self._next_hold += 1
            self._holds[self._next_hold] = start_s
            return self._next_hold

    def release(self, token: int) -> None:
        with self._lock:
            self._holds.pop(token, None)

    @property
    def bytes(self) -> int:
        """Packet bytes held: the current segment's and those kept of earlier ones."""
        return self._bytes

    @property
    def retired_bytes(self) -> int:
        """Of :attr:`bytes`, those kept of earlier segments."""
        with self._lock:
            return sum(_gops_bytes(gops) for _, gops, _ in self._retired)

    def span_s(self) -> float:
        """Seconds from the oldest packet held to the newest (0 when empty)."""
        with self._lock:
            if not self._gops:
                return 0.0
            return self.newest_s - self._gops[0][0].pts_s

    def cut(self, start_s: float, end_s: float, segment: int | None = None) -> Cut | None:
        """The packets from the last keyframe at or before ``start_s`` (or the oldest held)
        through the last one shown at or before ``end_s``, in decode order; None if none.
        ``segment``: only that segment's packets (None: the current one's), so a clip never
        spans a loop or a reconnect, and one asked for after its segment ended still gets
        what was kept of it."""
        with self._lock:
            if segment is None or segment == self.segment:
                template, gops = self._template, list(self._gops)
            else:
                template, gops = None, []
                for seg, old_gops, old_template in self._retired:
                    if seg == segment:  # several runs of one segment (a resumed read): all
                        template, gops = old_template, gops + old_gops
        if template is None or not gops:
            return None
        first = 0
        for index, gop in enumerate(gops):
            if gop[0].pts_s <= start_s:
                first = index
        entries: list[RingEntry] = []
        for gop in gops[first:]:
            if gop[0].pts_s > end_s:
                break
            entries.extend(gop)
        # Decode order: the last packets may be shown after end_s (B-frames); keep them only
        # up to the last packet shown by end_s, so nothing references a missing one.
        last = max((i for i, e in enumerate(entries) if e.pts_s <= end_s), default=-1)
        entries = entries[: last + 1]
        return Cut(entries, template) if entries else None
