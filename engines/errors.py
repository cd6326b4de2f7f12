"""The one error engines raise: what was expected, what was found, what to do.

A leaf module, so that ``engines`` depends on nothing above it (``streams`` re-exports it).
"""


class EngineError(Exception):
    """A model could not be loaded, built or run."""
