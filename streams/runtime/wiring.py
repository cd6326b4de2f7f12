"""Assemble a runnable pipeline from a validated Config: assets, engine, publisher."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engines import create_engine
from engines.base import Engine
from processors.labels import load_labels
from streams.bus.publisher import Publisher
from streams.config import Config
from streams.errors import EngineError
from streams.runtime.pipeline import Pipeline
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


def resolve_sources(config: Config) -> dict[str, str]:
    """Stream id -> the path or URL a reader opens; ``sample:NAME`` becomes the cached video's
    path."""
    sources = {}
    for stream in config.streams:
        if stream.url.startswith("sample:"):
            from streams.assets import resolve_sample

            sources[stream.id] = str(resolve_sample(stream.url))
        else:
            sources[stream.id] = stream.url
    return sources


def open_engine(config: Config) -> tuple[Engine, str]:
    """Create the engine for the config's model; returns it with the model's name."""
    path = model_path(config)
    if not path.is_file():
        raise EngineError(f"model.path: file not found: {path}")
    return create_engine(path, config.engine), path.stem


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
