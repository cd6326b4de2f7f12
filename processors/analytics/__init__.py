"""Zone and line analytics over tracked boxes: occupancy, enter/exit, dwell, line crossings.

Pure NumPy, no I/O and no threads. ``MultiStreamAnalytics`` updates many streams in one call
(each stream's zones, lines and tracks its own); ``StreamAnalytics`` is one stream alone.
"""

from processors.analytics.geometry import GeometryError, Line, Zone
from processors.analytics.state import Event, MultiStreamAnalytics, StreamAnalytics

__all__ = ["Event", "GeometryError", "Line", "MultiStreamAnalytics", "StreamAnalytics", "Zone"]
