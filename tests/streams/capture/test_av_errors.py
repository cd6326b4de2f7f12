"""FFmpeg's errors in words (streams.capture.av_errors.describe), from real PyAV failures."""

import av
import pytest

from streams.capture.av_errors import describe
from tests.helpers import free_port


def open_error(url: str) -> Exception:
    with pytest.raises(av.FFmpegError) as err:
        av.open(url, timeout=5.0)
    return err.value


def test_invalid_data_is_explained_without_its_errno(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    err = open_error(str(text))
    assert "1094995529" in str(err)  # what PyAV says
    said = describe(err)
    assert said.startswith("FFmpeg cannot read it as video (not a video, a damaged")
    assert "Errno" not in said and "notes.mp4" not in said


def test_a_closed_port_says_nothing_listens_and_hides_the_url():
    err = open_error(f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/live")
    said = describe(err)
    assert said.startswith("connection refused: nothing listens at that address and port")
    assert "hunter2" not in said and "127.0.0.1" not in said


@pytest.mark.parametrize(
    "err, words",
    [
        (TimeoutError(110, "Connection timed out"), "no answer in time"),
        (OSError(113, "No route to host"), "No route to host"),
        (RuntimeError("boom"), "boom"),
    ],
)
def test_other_errors_keep_their_own_words(err, words):
    said = describe(err)
    assert words in said and "Errno" not in said


def test_an_unknown_scheme_is_named():
    assert describe(open_error("nosuchscheme://x/y")) == "FFmpeg does not know this URL's scheme"
