"""ffprobe's view of a video file: what a player sees (codec, profile, duration) and each
packet's MD5, to show that a clip's packets are the source's bytes (no re-encoding)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest


def ffprobe(path: Path) -> dict:
    """The video stream's fields, the container's duration and the packets' hashes."""
    exe = shutil.which("ffprobe")
    if exe is None:
        pytest.skip("ffprobe not found (apt-get install ffmpeg)")
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
    exe = shutil.which("ffmpeg")
    if exe is None:
        pytest.skip("ffmpeg not found (apt-get install ffmpeg)")
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
