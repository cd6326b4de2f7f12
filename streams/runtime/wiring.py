"""Assemble a runnable pipeline from a validated Config: assets, engine, publisher."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from engines import create_engine
from engines.base import Engine
from engines.options import EngineOptions
from processors.labels import load_labels
from processors.yolo import detect_head_format
from streams.bus.publisher import Publisher
from streams.config import Config
from streams.errors import ConfigError, EngineError
from streams.runtime.pipeline import Pipeline
from streams.runtime.sources import resolve_sources
from streams.runtime.stats import PipelineStats

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything a run owns; ``close()`` releases it in reverse order."""

    pipeline: Pipeline
    engine: Engine
    publisher: Publisher

    def close(self) -> None:
        self.publisher.close()
        self.engine.close()


def model_path(config: Config) -> Path:
    """The ONNX file to load: the user's, or the built-in model from the asset cache."""
    if config.model.path.startswith("builtin:"):
        from streams.assets import resolve_model

        return resolve_model(config.model.path)
    return Path(config.model.path)


def engine_options(config: Config, path: Path) -> EngineOptions:
    """``config.engine`` with its int8 calibration frames resolved: from ``engine.calibration``
    (a folder or file of images/videos) or, with ``streams``, the configured streams. Nothing
    is decoded here; frames are read only if an int8 build needs them."""
    options = config.engine
    if options.precision != "int8":
        return options
    from processors.calibration import calibration_set, find_sources, model_input_hw

    if options.calibration == "streams":
        sources = list(dict.fromkeys(resolve_sources(config).values()))
    else:
        sources = find_sources(options.calibration)
    frames = calibration_set(sources, model_input_hw(path), options.calibration_frames)
    return replace(options, calibration_set=frames)


def open_engine(config: Config) -> tuple[Engine, str]:
    """Create the engine for the config's model; returns it with the model's name."""
    path = model_path(config)
    if not path.is_file():
        raise EngineError(f"model.path: file not found: {path}")
    return create_engine(path, engine_options(config, path)), path.stem


def model_classes(config: Config, engine: Engine, num_labels: int) -> int | None:
    """How many classes the model's YOLO head scores, or None where its shape does not say
    (the pipeline then reports the head itself)."""
    shape = tuple(engine.output_specs[0].shape)
    head = config.model.head
    try:
        if head == "auto":
            head = detect_head_format(shape, num_labels)
    except ValueError:
        return None
    if len(shape) != 3 or not all(isinstance(d, int) for d in shape[1:]):
        return None
    classes = shape[2] - 5 if head == "yolov5" else shape[1] - 4
    return classes if classes > 0 else None


def check_labels(config: Config, engine: Engine, labels: tuple[str, ...]) -> None:
    """Refuse labels that do not name the model's classes: with too few, detections come out
    labelled "5", "67"; with too many, every name may be the wrong one."""
    classes = model_classes(config, engine, len(labels))
    if classes is None or classes == len(labels):
        return
    spec = config.model.labels
    source = "'coco' has" if spec == "coco" else f"{spec} has"
    raise ConfigError(
        f"model.labels: {source} {len(labels)} labels but the model has {classes} classes; "
        f"give model.labels a text file with {classes} lines, one class name per line, "
        "in the model's class order"
    )


def wire_pipeline(
    config: Config,
    engine: Engine,
    model_name: str,
    publisher_connect: bool = False,
    stats_sink: Callable[[dict], None] | None = None,
) -> tuple[Pipeline, Publisher]:
    """The publisher and the pipeline around an open engine (not started); the caller keeps
    the engine. A worker process connects its publisher to the supervisor's relay and hands
    its snapshots to ``stats_sink`` instead of publishing ``stats`` itself."""
    sources = resolve_sources(config)
    labels = load_labels(config.model.labels)
    check_labels(config, engine, labels)
    stats = PipelineStats()
    publisher = Publisher(config.publish, stats, connect=publisher_connect)
    try:
        pipeline = Pipeline(
            config, engine, publisher, sources, labels, model_name, stats, stats_sink
        )
    except Exception:
        publisher.close()
        raise
    return pipeline, publisher


def build_runtime(
    config: Config,
    publisher_connect: bool = False,
    stats_sink: Callable[[dict], None] | None = None,
) -> Runtime:
    """Resolve assets, open the engine, bind the publisher and wire the pipeline (not started)."""
    load_labels(config.model.labels)  # a bad labels file fails before the engine is built
    engine, model_name = open_engine(config)
    try:
        pipeline, publisher = wire_pipeline(
            config, engine, model_name, publisher_connect, stats_sink
        )
    except Exception:
        engine.close()
        raise
    return Runtime(pipeline, engine, publisher)
