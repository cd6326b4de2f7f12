"""Multi-object tracking: stable ids for the boxes of many streams, updated in one call."""

from processors.track.tracker import MultiStreamTracker, TrackerParams

__all__ = ["MultiStreamTracker", "TrackerParams"]
