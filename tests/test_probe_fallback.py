"""The GPU host has no ffprobe or ffmpeg program: there the record tests' probe asks FFmpeg's
libraries through PyAV. Where both exist, both must give the same answers."""

from __future__ import annotations

import shutil

import pytest

from tests.support import probe

pytestmark = pytest.mark.skipif(
    not (shutil.which("ffprobe") and shutil.which("ffmpeg")), reason="needs ffprobe and ffmpeg"
)


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone_pristine.mp4"])
def test_pyav_probe_answers_what_ffprobe_answers(assets, name):
    video = assets.videos[name]
    assert probe._probe_with_pyav(video) == probe.ffprobe(video)
    assert probe._decode_with_pyav(video) == probe.decodes_cleanly(video) == ""


def test_both_find_a_clip_cut_short_broken(assets, tmp_path):
    data = assets.videos["bikes.mp4"].read_bytes()
    broken = tmp_path / "cut.mp4"
    broken.write_bytes(data[: len(data) // 2])  # half a file: unplayable
    assert probe.decodes_cleanly(broken) != ""
    assert probe._decode_with_pyav(broken) != ""
