"""The one error processors raise (a leaf module: ``processors`` depends only on ``engines``)."""

from engines.errors import EngineError


class ProcessorError(EngineError):
    """Pre- or postprocessing could not run (bad input, a kernel that would not compile).

    An EngineError too: to the pipeline, a preprocessing kernel that fails is one more way
    the inference path failed.
    """
