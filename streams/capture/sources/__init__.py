"""One module per source (:class:`streams.capture.source.Source`); each registers itself.

Every module here is imported by :func:`streams.capture.source.make_source`, so a new source
is one new file with a ``@register(kind, decoder)`` class.
"""
