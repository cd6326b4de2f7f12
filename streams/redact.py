"""Keep credentials out of logs, metrics, status messages and errors."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^@/\s]*)@")


def redact_url(text: str) -> str:
    """Replace ``user:password@`` in any URL inside ``text`` with ``***@``.

    >>> redact_url("rtsp://admin:secret@10.0.0.5/live")
    'rtsp://***@10.0.0.5/live'
    """
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
