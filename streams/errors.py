"""Errors users can act on: each says what was expected, what was found, what to do.

``engines`` and ``processors`` raise their own (leaf modules, so neither imports ``streams``);
``USER_ERRORS`` is what the command line turns into one clear line and exit code 1.
"""

from engines.errors import EngineError
from processors.errors import ProcessorError


class StreamsError(Exception):
    """Base class for every error `streams` raises on purpose."""


class ConfigError(StreamsError):
    """The configuration is invalid; the message starts with the key path (``streams[1].url``)."""


class AssetError(StreamsError):
    """A sample asset (model, video) could not be fetched, verified or converted."""


class CaptureError(StreamsError):
    """A video source could not be opened or read."""


class PublishError(StreamsError):
    """Results could not be published (address in use, bad endpoint)."""


USER_ERRORS = (StreamsError, EngineError)  # ProcessorError is an EngineError
__all__ = [
    "USER_ERRORS",
    "AssetError",
    "CaptureError",
    "ConfigError",
    "EngineError",
    "ProcessorError",
    "PublishError",
    "StreamsError",
]
