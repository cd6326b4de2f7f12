"""FFmpeg's errors, as PyAV raises them, in words a user can act on.

PyAV's text for them is FFmpeg's, behind an error number that means nothing to a person (it
is FFmpeg's four-letter tag as a negative number): ``[Errno 1094995529] Invalid data found
when processing input: 'rtsp://...'``. :func:`describe` says instead what it means for the
stream (not a video, a damaged file, the wrong port...), without the number and without the
URL (which may hold a password; the caller names the stream).

Example: for a camera URL that answers with something else than video,
``describe(err)`` is ``"FFmpeg cannot read it as video (not a video, a damaged or truncated
file, or not the format or protocol the URL says)"``.
"""

from __future__ import annotations

from streams.redact import redact_url

# PyAV's error classes (av.error; the OSError ones share Python's names) and what they mean;
# ``{text}``: FFmpeg's own words, where they add something.
MEANINGS = (
    (
        "InvalidDataError",
        "FFmpeg cannot read it as video (not a video, a damaged or truncated file, or not "
        "the format or protocol the URL says)",
    ),
    (
        "HTTPUnauthorizedError",
        "the server wants credentials, or refused those in the URL (401 Unauthorized)",
    ),
    ("HTTPForbiddenError", "the server refuses access to it (403 Forbidden)"),
    ("HTTPNotFoundError", "the server has nothing at this path (404 Not Found): check the URL"),
    ("HTTPClientError", "the server refused the request ({text})"),
    ("HTTPServerError", "the server failed to answer ({text})"),
    (
        "ConnectionRefusedError",
        "connection refused: nothing listens at that address and port (device off, or the "
        "wrong port)",
    ),
    ("ConnectionResetError", "the other end closed the connection"),
    ("TimeoutError", "no answer in time (host unreachable, or the device busy)"),
    ("ProtocolNotFoundError", "FFmpeg does not know this URL's scheme"),
    ("DemuxerNotFoundError", "FFmpeg does not know this container format"),
    ("DecoderNotFoundError", "FFmpeg has no decoder for its video codec"),
    ("EOFError", "it ended before a picture came"),
    ("PermissionError", "permission denied ({text})"),
    ("FileNotFoundError", "not found ({text})"),
)


def describe(err: BaseException) -> str:
    """What ``err`` (raised by PyAV, or an ``OSError``) means, in words: no error number, no
    URL. An error of another kind: FFmpeg's text alone."""
    text = _ffmpeg_text(err) or type(err).__name__
    meanings = dict(MEANINGS)
    for cls in type(err).__mro__:  # the most specific class first
        if cls.__name__ in meanings:
            return meanings[cls.__name__].replace("{text}", text)
    return text


def _ffmpeg_text(err: BaseException) -> str:
    """FFmpeg's message alone: PyAV's ``strerror``, else the text without ``[Errno N]``,
    the file name and the "last error log" PyAV may append (maybe another stream's)."""
    text = getattr(err, "strerror", None)
    if not isinstance(text, str) or not text:
        text = str(err).split("; last error log:")[0]
        if text.startswith("[Errno ") and "] " in text:
            text = text.split("] ", 1)[1]
        filename = getattr(err, "filename", None)
        if filename:
            text = text.replace(f": {filename!r}", "").replace(str(filename), "")
    return redact_url(text.strip())
