"""Where each stream is read from: its URL or path, with ``sample:NAME`` resolved."""

from __future__ import annotations

from streams.config import Config


def resolve_sources(config: Config) -> dict[str, str]:
    """Stream id -> the path or URL a reader opens; ``sample:NAME`` becomes the cached video's
    path."""
    sources = {}
    for stream in config.streams:
        if stream.url.startswith("sample:"):
            from streams.assets import resolve_sample

            sources[stream.id] = str(resolve_sample(stream.url))
        else:
            sources[stream.id] = stream.url
    return sources
