"""ffprobe's view of a video file: what a player sees (codec, profile, duration) and each
packet's MD5, to show that a clip's packets are the source's bytes (no re-encoding).

Where the ffprobe program is missing (the GPU host has none, and no apt; its ffmpeg is
imageio-ffmpeg's static build, which comes without ffprobe), the same questions go to
FFmpeg's libraries through PyAV: the same demuxer and decoders, so the
same packets, profile names and decode errors (tests/test_probe_fallback.py holds the two
to the same answers where both exist).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path


def ffprobe(path: Path) -> dict:
    """The video stream's fields, the container's duration and the packets' hashes."""
    exe = shutil.which("ffprobe")
    if exe is None:
        return _probe_with_pyav(path)
    out = subprocess.run(
        [
            exe,
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_streams",
            "-show_format",
            "-show_packets",
            "-show_data_hash",
            "MD5",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    info = json.loads(out.stdout)
    (stream,) = info["streams"]
    return {
        "codec": stream["codec_name"],
        "profile": stream.get("profile"),
        "width": stream["width"],
        "height": stream["height"],
        "duration_s": float(info["format"]["duration"]),
        "frames": len(info["packets"]),
        "hashes": [p["data_hash"] for p in info["packets"]],
        "keyframes": [p["flags"].startswith("K") for p in info["packets"]],
    }


def decodes_cleanly(path: Path) -> str:
    """FFmpeg decodes every frame of ``path``: its error output (empty when clean)."""
    from tests.support.rtsp import ffmpeg_exe  # PATH's, else imageio-ffmpeg's static build

    exe = ffmpeg_exe()
    if exe is None:
        return _decode_with_pyav(path)
    out = subprocess.run(
        [exe, "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stderr.strip() + ("" if out.returncode == 0 else f" (exit {out.returncode})")


def picture_hashes(path: Path) -> list[str]:
    """The MD5 of each decoded picture (its YUV planes), in display order: a clip remuxed
    from a stream's packets decodes to bit-identical pictures; a re-encoded one never does."""
    import hashlib

    import av

    with av.open(str(path)) as container:
        return [
            hashlib.md5(b"".join(bytes(plane) for plane in frame.planes)).hexdigest()
            for frame in container.decode(video=0)
        ]


def _probe_with_pyav(path: Path) -> dict:
    """:func:`ffprobe`'s fields from libavformat through PyAV."""
    import hashlib

    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]  # not the final flush one
        return {
            "codec": stream.codec_context.name,
            "profile": stream.codec_context.profile,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "duration_s": container.duration / 1e6,
            "frames": len(packets),
            "hashes": ["MD5:" + hashlib.md5(bytes(p)).hexdigest() for p in packets],
            "keyframes": [p.is_keyframe for p in packets],
        }


def _decode_with_pyav(path: Path) -> str:
    """:func:`decodes_cleanly` through PyAV: its error, empty when every frame decoded."""
    import av

    try:
        with av.open(str(path)) as container:
            container.streams.video[0].thread_type = "AUTO"
            for _ in container.decode(video=0):
                pass
    except av.FFmpegError as err:
        return str(err)
    return ""
