"""NVDEC decoding with PyNvVideoCodec: frames stay on the GPU as NV12 surfaces.

Why: decoding many streams on the CPU is what limits a GPU box; NVDEC decodes them on the
GPU's video engines and the NV12 planes go straight to the preprocessing kernel
(:mod:`processors.gpu_preprocess`), never to the host.

PyNvVideoCodec's ``Decode`` writes every frame into the same output buffer (2.2.4 returns
the same plane addresses for consecutive frames), so a frame is only valid until the next
``Decode``. A pipeline holds a frame for a while (the latest-frame slot, the batch in flight),
so each frame is copied, on the reader's CUDA stream (one device-to-device copy, a few
microseconds for 1080p), into a surface of the reader's own small pool. The decoder is created
on that same stream, so its post-processing and our copy are ordered without a host wait. The
surface is handed out as a :class:`DecodedSurface` with a ``ready_event`` the consumer's stream
waits on, and comes back through ``release(stream)``: an event recorded on the consumer's
stream after the kernel that read it, which the reader's stream waits on before writing that
surface again. Nothing here synchronises the host with the GPU per frame. (PyNvVideoCodec's
``GetLockedFrame``/``UnlockFrame`` would avoid the copy, but tie the pipeline to the decoder's
internal pool size; the copy costs nothing measurable: 8 sessions decode 1080p H.264 at the
same ~4,950 fps with or without it on an H100.)

Files are demuxed by PyNvVideoCodec's own FFmpeg demuxer (``CreateDemuxer``). Network streams
(RTSP and the like) are demuxed on the CPU by PyAV (:mod:`streams.capture.network`), which has
the TCP
transport and the open/read timeouts that ``CreateDemuxer`` lacks, and their packets are fed to
the same NVDEC decoder. The caller falls back to OpenCV/FFmpeg decoding on the CPU when
:func:`nvdec_available` says no or the reader cannot open (for a network stream whose codec
NVDEC does not take, :class:`streams.capture.network.UnsupportedCodec`).

Example:
    ok, reason = nvdec_available()
    with NvdecReader("bikes.mp4") as reader:
        while (surface := reader.read()) is not None:
            boxes = pre.preprocess(stream, dst_ptr, [surface.nv12()])
            surface.release(stream)      # reusable once the kernel has read it
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines import cuda
from processors.gpu_preprocess import DeviceNV12
from streams.capture import nvdec_sessions
from streams.capture.frames import DisplayClock
from streams.capture.network import PacketReader
from streams.errors import CaptureError, EngineError
from streams.redact import redact_url

logger = logging.getLogger(__name__)


class NvdecRefused(CaptureError):
    """The source opened, but NVDEC would not create a decoder for it or decode it (a profile,
    size or chroma format it lacks, or no decoder session left): decode on the CPU instead."""


def _import_nvc() -> Any:
    """PyNvVideoCodec, or CaptureError saying why it is unusable."""
    try:
        import PyNvVideoCodec as nvc
    except ImportError as err:
        raise CaptureError(
            f"PyNvVideoCodec is not installed ({err}): pip install "
            "pynvvideocodec, or use decoder: opencv"
        ) from err
    except Exception as err:  # its __init__ probes the driver and raises RuntimeError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CaptureError(
            f"PyNvVideoCodec cannot load ({first}); check the NVIDIA driver "
            "(video capability in containers), or use decoder: opencv"
        ) from err
    return nvc


def nvdec_available(gpu_id: int = 0, codec: str = "h264") -> tuple[bool, str]:
    """Whether NVDEC can decode ``codec`` on GPU ``gpu_id``, and why (for the startup log).

    Never raises: the answer is ``(False, reason)`` when PyNvVideoCodec does not import,
    no CUDA GPU is visible, or the GPU's decoder does not support the codec.
    """
    try:
        nvc = _import_nvc()
    except CaptureError as err:
        return False, str(err)
    try:
        count = cuda.device_count()
    except EngineError as err:
        return False, f"cuda-python is unusable: {err}"
    if gpu_id >= count:
        return False, f"no CUDA GPU cuda:{gpu_id} ({count} visible)"
    codec_id = getattr(nvc.cudaVideoCodec, codec.upper(), None)
    if codec_id is None:
        return False, f"PyNvVideoCodec knows no codec named {codec!r}"
    members = getattr(nvc.cudaVideoChromaFormat, "__members__", {})  # 2.2.4: "420", "422", ...
    chroma = next((members[name] for name in ("420", "YUV420", "_420") if name in members), None)
    if chroma is None:  # enum names differ between versions: skip the query, decode will tell
        return True, f"NVDEC on cuda:{gpu_id} (capabilities not queried)"
    try:
        caps = nvc.GetDecoderCaps(gpuid=gpu_id, codec=codec_id, chromaformat=chroma, bitdepth=8)
    except Exception as err:  # noqa: BLE001 - the driver's refusal, as PyNvVideoCodec raises it
        return False, f"NVDEC capability query failed on cuda:{gpu_id}: {err}"
    caps = dict(caps) if caps is not None else {}
    if not caps.get("supported", 1) or not caps.get("num_decoder_engines", 1):
        return False, f"cuda:{gpu_id} has no NVDEC support for {codec} 4:2:0 8-bit"
    engines = caps.get("num_decoder_engines", "?")
    return True, f"NVDEC on cuda:{gpu_id}: {codec} supported, {engines} decoder engine(s)"


@dataclass
class _Surface:
    """One NV12 picture of the reader's pool, with its two events."""

    buffer: cuda.DeviceBuffer
    pitch: int
    height: int
    ready: cuda.Event = field(default_factory=cuda.Event)  # copy into it finished
    free: cuda.Event = field(default_factory=cuda.Event)  # its last reader finished
    free_pending: bool = False  # ``free`` was recorded on a consumer stream since the last copy

    @property
    def y_ptr(self) -> int:
        return self.buffer.ptr

    @property
    def uv_ptr(self) -> int:
        return self.buffer.ptr + self.pitch * self.height


@dataclass
class DecodedSurface:
    """One decoded frame on the GPU: NV12 planes, their pitch, and a release hook.

    Attributes:
        y_ptr, uv_ptr: device addresses of the Y and interleaved UV planes.
        pitch: bytes per row of both planes. width, height: picture size in pixels.
        pts_s: presentation time in seconds (stream clock). index: frame number from 0.
        ready_event: CUDA event recorded after the copy; a consumer on another stream waits
            on it (``processors.gpu_preprocess`` does, through ``nv12()``).
        arrived_mono_s: network streams: ``time.monotonic()`` when the packet that completed
            it came off the network (the latency base); 0 for files.
    """

    y_ptr: int
    uv_ptr: int
    pitch: int
    width: int
    height: int
    pts_s: float
    index: int
    ready_event: Any
    arrived_mono_s: float = 0.0  # network streams: when its packet (or a later one) arrived
    _reader: NvdecReader | None = field(default=None, repr=False)
    _surface: _Surface | None = field(default=None, repr=False)

    def nv12(self) -> DeviceNV12:
        """The surface as a preprocessing source (waits on ``ready_event`` first)."""
        return DeviceNV12(
            self.y_ptr, self.uv_ptr, self.pitch, self.width, self.height, self.ready_event
        )

    def release(self, stream: Any = None) -> None:
        """Give the surface back to the reader once the work on ``stream`` has read it.

        Args:
            stream: the consumer's CUDA stream (handle, or an object with ``.handle``). An
                event is recorded there; the reader waits on it (GPU side) before reusing
                the surface. ``None``: the caller knows every reader has finished.

        Releasing twice is a no-op.
        """
        reader, surface = self._reader, self._surface
        self._reader = self._surface = None
        if reader is not None and surface is not None:
            reader._give_back(surface, stream)


class NvdecReader:
    """Decodes one file or URL with NVDEC into a small pool of device NV12 surfaces.

    Args:
        path_or_url: a video file, or a network stream's URL (``rtsp://``, ...).
        gpu_id: the GPU to decode on (``cuda:N``).
        pool_size: surfaces handed out at once at most (latest-frame slot + batch in flight
            + the one being filled; 4 by default). ``read`` blocks while all are held.
        acquire_timeout_s: how long ``read`` waits for a released surface before raising.
        loop: for files: at the end, demux the file again and keep feeding the same decoder
            (no decoder re-creation); ``pts_s`` keeps increasing across loops.
        open_timeout_s, read_timeout_s: for network streams: give up opening, or end the
            stream when nothing arrives, after this long (``capture.*_timeout_s``).
        ring: network streams: a ``PacketRing`` the demuxed packets also go to (clips).

    Attributes:
        width, height: picture size. fps: the container's frame rate (0 when unknown).
        codec: PyNvVideoCodec's codec id. network: a network stream (demuxed by PyAV).
    """

    def __init__(
        self,
        path_or_url: str | Path,
        gpu_id: int = 0,
        pool_size: int = 4,
        acquire_timeout_s: float = 10.0,
        loop: bool = False,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        ring: Any = None,
    ) -> None:
        self.source = str(path_or_url)
        self._name = redact_url(self.source)
        self.network = "://" in self.source
        if not self.network and not Path(self.source).is_file():
            raise CaptureError(f"{self._name}: file not found")
        nvc = _import_nvc()
        self._nvc = nvc
        self.gpu_id = int(gpu_id)
        self.pool_size = max(1, int(pool_size))
        self.acquire_timeout_s = float(acquire_timeout_s)
        self.loop = bool(loop) and not self.network
        self.loops = 0  # completed passes over the file
        try:
            cuda.set_device(self.gpu_id)
        except EngineError as err:
            raise CaptureError(f"{self._name}: NVDEC needs a CUDA GPU: {err}") from err
        self._rt = cuda.cudart()
        self._stream = cuda.Stream(non_blocking=True)
        self._pool: list[_Surface] = []
        self._free: collections.deque[_Surface] = collections.deque()
        self._cond = threading.Condition()
        self._pending: collections.deque[Any] = collections.deque()
        self._packets: Any = None
        self._network: PacketReader | None = None
        self._held_packet: Any = None  # the bytes NVDEC is parsing; alive until Decode returns
        self.low_latency = False
        self._ended = False
        self._closed = False
        self._index = 0
        try:
            if self.network:
                self._network = PacketReader(self.source, open_timeout_s, read_timeout_s, ring)
                self.codec = getattr(nvc.cudaVideoCodec, self._network.nvdec_codec)
                self._demuxer = None
            else:
                self._demuxer = nvc.CreateDemuxer(filename=self.source)
                self.codec = self._demuxer.GetNvCodecId()
            # A live camera without B-frames: every picture leaves the decoder as soon as its
            # packet is in, instead of NVDEC's default hold-back of a few pictures (at 30 fps,
            # up to 4 x 33 ms more from camera to result).
            self.low_latency = (
                self._network is not None
                and not self._network.reorders
                and hasattr(nvc, "DisplayDecodeLatencyType")
                and hasattr(nvc, "VideoPacketFlag")
            )
            extra = {"latency": nvc.DisplayDecodeLatencyType.LOW} if self.low_latency else {}
            self._decoder = nvc.CreateDecoder(
                gpuid=self.gpu_id,
                codec=self.codec,
                cudacontext=self._context_handle(),
                cudastream=self._stream.handle,
                usedevicememory=True,
                **extra,
            )
            nvdec_sessions.opened()  # closed() in close(), while _decoder is set
        except Exception as err:
            self._stream.destroy()
            if self._network is not None:
                self._network.close()
            if isinstance(err, CaptureError):
                raise
            if self._network is not None:  # the camera answered; NVDEC is what said no
                raise NvdecRefused(
                    f"{self._name}: NVDEC cannot decode this stream ({redact_url(str(err))})"
                ) from err
            raise CaptureError(
                f"{self._name}: NVDEC cannot open it ({err}); not a video, "
                "an unsupported codec, or unreachable"
            ) from err
        if self._network is not None:
            self.width, self.height = self._network.width, self._network.height
            self.fps = self._network.fps
            # Packet times go to NVDEC in microseconds and come back on the decoded frames.
            self._timebase_s = 1e-6 if _pts_settable(nvc) else 0.0
        else:
            self.width = int(_call(self._demuxer, "Width", 0))
            self.height = int(_call(self._demuxer, "Height", 0))
            self.fps = float(_call(self._demuxer, "FrameRate", 0.0) or 0.0)
            num = _call(self._demuxer, "GetTimebaseNum", 0)
            den = _call(self._demuxer, "GetTimebaseDen", 0)
            self._timebase_s = float(num) / float(den) if num and den else 0.0
            self._packets = iter(self._demuxer)
        self._clock = DisplayClock(self.fps)
        self._flush_packet_sent = False
        logger.debug(
            "%s: NVDEC %sx%s at %.3g fps, codec %s",
            self._name,
            self.width,
            self.height,
            self.fps,
            self.codec,
        )

    @property
    def stalled(self) -> bool:
        """A network stream ended because nothing arrived for the read timeout."""
        return self._network is not None and self._network.stalled

    def _context_handle(self) -> int:
        """The primary context cudart made current, so pointers are shared with our kernels."""
        ctx = cuda.check(cuda.driver().cuCtxGetCurrent(), "cuCtxGetCurrent")
        return int(ctx) if ctx is not None else 0

    def _ensure_thread(self) -> None:
        cuda.use_device(self.gpu_id)

    # --- decoding --------------------------------------------------------------------------

    def _next_frame(self) -> Any | None:
        """The next decoded PyNvVideoCodec frame (display order), or None at the end."""
        while not self._pending:
            if self._ended:
                return None
            packet = self._next_packet()
            if packet is None and self.loop:
                self._rewind()
                continue
            if packet is None and self._flush_packet_sent:
                self._ended = True
                continue
            try:
                if packet is None:
                    # End of input: an empty packet flushes the frames NVDEC still holds back.
                    self._flush_packet_sent = True
                    packet = self._nvc.PacketData()
                frames = self._decoder.Decode(packet)
            except Exception as err:
                if self._flush_packet_sent:
                    self._ended = True
                    continue
                raise NvdecRefused(
                    f"{self._name}: NVDEC decode failed: {redact_url(str(err))}"
                ) from err
            self._pending.extend(frames)
        return self._pending.popleft()

    def _next_packet(self) -> Any | None:
        """The next PyNvVideoCodec packet from the file's demuxer or the network stream."""
        if self._network is None:
            return next(self._packets, None)
        packet = self._network.read()
        if packet is None:
            return None
        data = self._nvc.PacketData()
        data.bsl_data, data.bsl = packet.data.ctypes.data, packet.data.size
        if self._timebase_s:
            data.pts = round(packet.pts_s * 1e6)
        if self.low_latency:  # the packet is a whole picture: decode it now
            data.decode_flag = self._nvc.VideoPacketFlag.ENDOFPICTURE
        self._held_packet = packet  # NVDEC reads the bytes during Decode, not after
        return data

    def _rewind(self) -> None:
        """Demux the file again from the start; the decoder carries on (next GOP is an IDR)."""
        try:
            self._demuxer = self._nvc.CreateDemuxer(filename=self.source)
        except Exception as err:
            raise CaptureError(f"{self._name}: NVDEC cannot reopen it to loop: {err}") from err
        self._packets = iter(self._demuxer)
        self.loops += 1

    def read(self) -> DecodedSurface | None:
        """Decode the next frame into a free surface; None at the end of the stream.

        Blocks while every surface is held (up to ``acquire_timeout_s``, then CaptureError).
        """
        if self._closed:
            raise CaptureError(f"{self._name}: read() after close()")
        self._ensure_thread()
        frame = self._next_frame()
        if frame is None:
            return None
        y_src, uv_src, src_pitch, width, height = _frame_planes(frame, self.width, self.height)
        surface = self._acquire(width, height, src_pitch)
        rt, handle = self._rt, self._stream.handle
        d2d = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        if surface.free_pending:  # a consumer stream may still be reading it: GPU-side wait
            cuda.check(rt.cudaStreamWaitEvent(handle, surface.free.raw, 0), "cudaStreamWaitEvent")
            surface.free_pending = False
        rows = height + (height + 1) // 2
        if surface.pitch == src_pitch and uv_src == y_src + src_pitch * height:
            cuda.check(
                rt.cudaMemcpyAsync(surface.y_ptr, y_src, src_pitch * rows, d2d, handle),
                "cudaMemcpyAsync(NV12 frame)",
            )  # one copy: same layout both sides
        else:
            cuda.check(
                rt.cudaMemcpy2DAsync(
                    surface.y_ptr, surface.pitch, y_src, src_pitch, width, height, d2d, handle
                ),
                "cudaMemcpy2DAsync(Y plane)",
            )
            cuda.check(
                rt.cudaMemcpy2DAsync(
                    surface.uv_ptr,
                    surface.pitch,
                    uv_src,
                    src_pitch,
                    width,
                    rows - height,
                    d2d,
                    handle,
                ),
                "cudaMemcpy2DAsync(UV plane)",
            )
        cuda.check(rt.cudaEventRecord(surface.ready.raw, handle), "cudaEventRecord")
        index, self._index = self._index, self._index + 1
        pts_s = self._pts_s(frame, index)
        arrived_mono_s = self._network.arrived_mono_s if self._network is not None else 0.0
        return DecodedSurface(
            surface.y_ptr,
            surface.uv_ptr,
            surface.pitch,
            width,
            height,
            pts_s,
            index,
            surface.ready.raw,
            arrived_mono_s,
            self,
            surface,
        )

    def _pts_s(self, frame: Any, index: int) -> float:
        stamp = getattr(frame, "timestamp", None)
        if stamp is None or not self._timebase_s:
            return index / self.fps if self.fps else 0.0
        # A file looped, or a camera's clock stepped back: the clock carries on from the last.
        return self._clock(float(stamp) * self._timebase_s)

    # --- the surface pool ------------------------------------------------------------------

    def _acquire(self, width: int, height: int, pitch: int) -> _Surface:
        deadline = time.monotonic() + self.acquire_timeout_s
        with self._cond:
            while True:
                while self._free:
                    surface = self._free.popleft()
                    if surface.pitch == pitch and surface.height == height:
                        return surface
                    self._drop(surface)  # the stream changed size: reallocate
                if len(self._pool) < self.pool_size:
                    return self._allocate(max(pitch, width), height)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CaptureError(
                        f"{self._name}: all {self.pool_size} NVDEC surfaces are still held "
                        f"after {self.acquire_timeout_s:g} s; release() each frame once "
                        "preprocessing has read it"
                    )
                self._cond.wait(remaining)

    def _allocate(self, pitch: int, height: int) -> _Surface:
        """A surface with the decoder's pitch, so one linear copy moves the whole frame."""
        rows = height + (height + 1) // 2
        surface = _Surface(cuda.DeviceBuffer(pitch * rows), pitch, height)
        self._pool.append(surface)
        return surface

    def _drop(self, surface: _Surface) -> None:
        surface.free.synchronize()
        surface.ready.destroy()
        surface.free.destroy()
        surface.buffer.free()
        self._pool.remove(surface)

    def _give_back(self, surface: _Surface, stream: Any) -> None:
        if stream is not None:
            handle = int(getattr(stream, "handle", stream) or 0)
            cuda.check(self._rt.cudaEventRecord(surface.free.raw, handle), "cudaEventRecord")
            surface.free_pending = True
        with self._cond:
            if self._closed:
                return
            self._free.append(surface)
            self._cond.notify()

    @property
    def surfaces_held(self) -> int:
        """Surfaces handed out and not yet released."""
        with self._cond:
            return len(self._pool) - len(self._free)

    # --- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Free the decoder, the demuxer, the surfaces and the stream (waits for the GPU)."""
        if self._closed:
            return
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._pending.clear()
        self._stream.synchronize()
        nvdec_sessions.closed()  # a reader exists only with its decoder; close runs once
        self._decoder = self._demuxer = self._packets = self._held_packet = None
        if self._network is not None:
            self._network.close()
        for surface in list(self._pool):
            if surface.free_pending:  # a consumer's kernel may still be reading it
                surface.free.synchronize()
            self._drop(surface)
        self._free.clear()
        self._stream.destroy()

    def __enter__(self) -> NvdecReader:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pts_settable(nvc: Any) -> bool:
    """Whether this PyNvVideoCodec lets us set a packet's ``pts`` (echoed on its frame)."""
    try:
        nvc.PacketData().pts = 0
    except (AttributeError, TypeError):
        return False
    return True


def _call(obj: Any, name: str, default: Any) -> Any:
    """``obj.name()`` when PyNvVideoCodec has it (its API grew between versions)."""
    method = getattr(obj, name, None)
    if method is None:
        return default
    try:
        return method()
    except Exception:  # noqa: BLE001 - an optional getter; its absence is not an error
        return default


def _frame_planes(frame: Any, width: int, height: int) -> tuple[int, int, int, int, int]:
    """(y_ptr, uv_ptr, pitch, width, height) of a PyNvVideoCodec NV12 device frame.

    PyNvVideoCodec 2.x: ``frame.shape`` is ``(h * 3/2, w)``, ``frame.strides[0]`` the pitch and
    ``GetPtrToPlane(0/1)`` the planes (seen on 2.2.4). Older builds: the CUDA array interface
    of ``frame.cuda()``, one view per plane.
    """
    try:
        rows, frame_w = (int(d) for d in frame.shape[:2])
        pitch = int(frame.strides[0])
        return (
            int(frame.GetPtrToPlane(0)),
            int(frame.GetPtrToPlane(1)),
            pitch,
            frame_w,
            rows * 2 // 3,
        )
    except (AttributeError, TypeError, IndexError, ValueError):
        pass
    views = frame.cuda()
    first = views[0].__cuda_array_interface__
    shape, strides = tuple(first["shape"]), first.get("strides")
    pitch = int(strides[0]) if strides else int(shape[1])
    y_ptr = int(first["data"][0])
    if len(views) >= 2:
        return (
            y_ptr,
            int(views[1].__cuda_array_interface__["data"][0]),
            pitch,
            int(shape[1]),
            int(shape[0]),
        )
    return y_ptr, y_ptr + pitch * (int(shape[0]) * 2 // 3), pitch, int(shape[1]), height
