"""Zone and line analytics over tracked boxes: occupancy, enter/exit, dwell, line crossings.

Pure NumPy, no I/O and no threads; one ``StreamAnalytics`` per stream (nothing shared).
"""

from processors.analytics.geometry import GeometryError, Line, Zone
from processors.analytics.state import Event, StreamAnalytics

__all__ = ["Event", "GeometryError", "Line", "StreamAnalytics", "Zone"]
