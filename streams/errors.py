"""Errors users can act on: each says what was expected, what was found, what to do."""


class StreamsError(Exception):
    """Base class for every error `streams` raises on purpose."""


class ConfigError(StreamsError):
    """The configuration is invalid; the message starts with the key path (``streams[1].url``)."""


class AssetError(StreamsError):
    """A sample asset (model, video) could not be fetched, verified or converted."""


class CaptureError(StreamsError):
    """A video source could not be opened or read."""


class EngineError(StreamsError):
    """A model could not be loaded, built or run."""


class PublishError(StreamsError):
    """Results could not be published (address in use, bad endpoint)."""
