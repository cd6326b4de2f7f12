"""The Darknet converter's version, apart from the converter so that checking a cached model
does not import onnx (about a second of CPU at every ``streams run``)."""

#: Bump when the graph engines.darknet emits changes, so cached conversions are redone.
CONVERTER_VERSION = "1"
