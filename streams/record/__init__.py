"""Snapshots and clips of events: a JPEG of the event's frame with its boxes drawn, and an MP4
remuxed from the stream's ring of compressed packets (:mod:`streams.capture.packet_ring`),
written by one background thread under a directory with a size cap (docs/configuration.md,
``record``)."""
