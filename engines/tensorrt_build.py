"""Build TensorRT engines from ONNX and keep them in an on-disk cache.

Building an engine takes from tens of seconds to many minutes, so a built engine is kept
under ``options.cache_dir`` and reused while nothing that shaped it has changed. The cache key
covers the ONNX file's sha256, the TensorRT version, the GPU (name and compute capability),
the precision, the batch profile (min/opt/max and how many copies), the builder optimization
level and the workspace limit. Layout::

    <cache_dir>/<model-stem>-<key16>.engine   serialized engine
    <cache_dir>/<model-stem>-<key16>.json     sidecar: the key fields, the engine's size and sha256
    <cache_dir>/timing-<trt>-<gpu>-<sm>-<model16>-<precision>.cache
                                               TensorRT timing cache of one network
    <cache_dir>/<model-stem>-<key16>-qdq.onnx  int8 Q/DQ copy of the model (engines/qdq.py)
    <cache_dir>/<model-stem>-<key16>-<m>.calib INT8 calibration table (engines/trt_calibrator.py)

A cached file is used only when its sidecar matches the key and its size and sha256 match the
sidecar; anything else (truncated, corrupted, built elsewhere, interrupted) is logged at
WARNING with the reason and rebuilt. Files are written atomically (temp file, then rename).

TensorRT versions: 8.6 (explicit-batch networks, ``BuilderFlag.FP16``), 10.x (networks
created with flags 0, ``BuilderFlag.FP16``) and 11.x (no weak typing: for fp16 the ONNX is
first converted to FP16 by :mod:`engines.fp16` and the network is created strongly typed).
INT8 (``precision: int8``): ``int8_method: qdq`` builds a Q/DQ ONNX made by ONNX Runtime
(:mod:`engines.qdq`) with ``BuilderFlag.INT8`` (and FP16 for the layers left unquantized) where
that flag exists, strongly typed from an fp16 copy of the Q/DQ model where it does not (11.x);
``entropy``/``minmax`` use TensorRT's implicit calibrators (:mod:`engines.trt_calibrator`;
8.6 and 10 only).
The cuBLAS/cuDNN tactic sources are switched off on every version: TensorRT's own kernels
are as fast for these models, and some deployments (the project's GPU test kit) ship stub
cuBLAS/cuDNN libraries that abort if called.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from engines import cuda, engine_layers, int8_tail
from engines.errors import EngineError
from engines.files import atomic_write, file_lock, file_sha256
from engines.options import EngineOptions

logger = logging.getLogger(__name__)

MIN_TENSORRT = (8, 6)
KEY_FORMAT = 1  # bump when the build recipe changes in a way the other fields do not capture
HEARTBEAT_S = 10.0

Progress = Callable[[str], None]


def import_tensorrt() -> Any:
    """Import ``tensorrt``, or raise EngineError saying how to get a usable one."""
    try:
        import tensorrt as trt
    except ImportError as err:
        raise EngineError(
            f"TensorRT is not installed ({err}); install it (pip install 'tensorrt>=8.6', or "
            "JetPack 6 on Jetson) or use engine.backend: onnxruntime"
        ) from err
    except OSError as err:  # the wheel imports but a shared library (libnvinfer, cudart) is missing
        raise EngineError(
            f"TensorRT is installed but cannot load its libraries ({err}); check LD_LIBRARY_PATH "
            "and the CUDA runtime it was built for, or use engine.backend: onnxruntime"
        ) from err
    if version_tuple(trt) < MIN_TENSORRT:
        raise EngineError(
            f"TensorRT {trt.__version__} is too old: streams needs >= 8.6 (name-based tensor "
            "API, builder optimization levels); upgrade TensorRT or use engine.backend: onnxruntime"
        )
    return trt


def version_tuple(trt: Any) -> tuple[int, int]:
    """(major, minor) of the imported TensorRT."""
    parts = re.findall(r"\d+", trt.__version__)
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def int8_mode(trt: Any) -> str:
    """How this TensorRT builds a Q/DQ network: ``builder_flag`` (8.6, 10.x) or
    ``strongly_typed`` (11.x, where the INT8 flag is gone)."""
    return "builder_flag" if hasattr(trt.BuilderFlag, "INT8") else "strongly_typed"


def fp16_mode(trt: Any) -> str:
    """How this TensorRT does fp16: ``builder_flag`` (8.6, 10.x) or ``strongly_typed`` (11.x)."""
    return "builder_flag" if hasattr(trt.BuilderFlag, "FP16") else "strongly_typed"


@dataclass(frozen=True)
class BuildFlags:
    """What a build asks of this TensorRT, decided from its enums alone (so the tests check it
    against the real 8.6, 10 and 11 bindings: tests/engines/test_tensorrt_versions.py)."""

    network: int  # create_network's NetworkDefinitionCreationFlag bits
    builder: tuple[str, ...]  # the BuilderFlag names set on the config
    strongly_typed: bool  # types come from the ONNX: fp16/int8 on 11 build an fp16 ONNX copy


def build_flags(trt: Any, precision: str) -> BuildFlags:
    """Network and builder flags for ``precision`` on this TensorRT.

    8.6 needs ``EXPLICIT_BATCH`` (10 deprecates it, 11 removed it). 8.6 and 10 take fp16 and int8
    from builder flags, int8 with FP16 too so the layers left unquantized run fp16, not fp32.
    11 removed those flags: every network is strongly typed, and the ``STRONGLY_TYPED`` flag,
    set where it exists, is kept by 11 for compatibility and ignored. There fp16, and int8's
    unquantized layers, come from an fp16 copy of the ONNX (:mod:`engines.fp16`; for int8, of
    the Q/DQ model). fp32 needs no flag anywhere. Both int8 methods take the same flags: 11,
    strongly typed, builds only Q/DQ networks (a calibrator method is refused there before the
    build: :func:`_int8_onnx`).
    """
    network = 0
    if version_tuple(trt)[0] < 10:
        network |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    typed = (precision == "fp16" and fp16_mode(trt) == "strongly_typed") or (
        precision == "int8" and int8_mode(trt) == "strongly_typed"
    )
    builder: tuple[str, ...] = ()
    if typed:
        strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if strongly_typed is not None:
            network |= 1 << int(strongly_typed)
    elif precision == "fp16":
        builder = ("FP16",)
    elif precision == "int8":
        builder = ("INT8", "FP16")
    return BuildFlags(network=network, builder=builder, strongly_typed=typed)


def library_tactic_sources(trt: Any) -> list[Any]:
    """The cuBLAS, cuBLASLt and cuDNN tactic sources this TensorRT has (none on 11)."""
    names = ("CUBLAS", "CUBLAS_LT", "CUDNN")
    return [getattr(trt.TacticSource, n) for n in names if hasattr(trt.TacticSource, n)]


# One optimization profile per engine. Each execution context of the slot ring runs on its own
# deserialized copy of the same plan instead of on its own profile: TensorRT 8.6 lets only one
# context at a time use a profile (a second one asking for profile 0 gets "Profile 0 has been
# chosen by another IExecutionContext", then crashes: benchmarks/trt_shared_profile_probe.py),
# and copies of one profile in one build are tuned separately, so they may pick different
# tactics: on an H200 the third of three copies gave outputs up to 0.75 away from the first for
# the same input (benchmarks/slot_determinism_probe.py), and which slot ran a frame, a matter of
# timing, changed its detections. The same plan gives the same bits on every slot.
PROFILES_PER_ENGINE = 1


# -- logging bridge -------------------------------------------------------------------------

_trt_logger: Any = None


def trt_logger() -> Any:
    """One TensorRT logger for the process, forwarding to :mod:`logging` and keeping the last
    errors so an EngineError can quote them."""
    global _trt_logger
    if _trt_logger is None:
        trt = import_tensorrt()

        class _Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)
                self.errors: collections.deque[str] = collections.deque(maxlen=20)

            def log(self, severity: Any, msg: str) -> None:
                sev = trt.ILogger.Severity
                if severity in (sev.INTERNAL_ERROR, sev.ERROR):
                    self.errors.append(msg)
                    logger.error("TensorRT: %s", msg)
                elif severity == sev.WARNING:
                    logger.warning("TensorRT: %s", msg)
                elif severity == sev.INFO:
                    logger.debug("TensorRT: %s", msg)

        _trt_logger = _Logger()
    return _trt_logger


# -- cache keys and files -------------------------------------------------------------------


@dataclass(frozen=True)
class CacheEntry:
    """Where one (model, options, TensorRT, GPU) engine lives, and the key that names it."""

    key: dict[str, Any]
    digest: str
    engine_path: Path
    sidecar_path: Path


def resolve_int8_method(trt: Any, options: EngineOptions) -> EngineOptions:
    """``int8_method: auto`` made concrete for this TensorRT: its minmax calibrator where it has
    one (8.6, 10), else qdq (11 removed the calibrators). On the H200, minmax ran fastest at
    every level. On frames calibration never read it kept the most of fp32's detections at
    level 0, and about as much as qdq at level 1 (docs/benchmarks.md)."""
    if options.int8_method != "auto":
        return options
    from engines import trt_calibrator

    method = "minmax" if trt_calibrator.available(trt, "minmax") else "qdq"
    return replace(options, int8_method=method)


def cache_entry(model_path: Path, options: EngineOptions) -> CacheEntry:
    """Compute the cache key of ``model_path`` built with ``options`` on this GPU."""
    trt = import_tensorrt()
    options = resolve_int8_method(trt, options)
    model_path = Path(model_path)
    if not model_path.is_file():
        raise EngineError(f"{model_path}: no such ONNX file")
    device = cuda.device_info(options.device_index)
    opt_batch = options.opt_batch or options.max_batch
    key = {
        "format": KEY_FORMAT,
        "onnx_sha256": file_sha256(model_path),
        "tensorrt": trt.__version__,
        "gpu": device.name,
        "compute_capability": f"{device.compute_capability[0]}.{device.compute_capability[1]}",
        "precision": options.precision,
        "fp16_mode": fp16_mode(trt) if options.precision == "fp16" else None,
        "profile": [1, opt_batch, options.max_batch],
        "profile_copies": PROFILES_PER_ENGINE,
        "builder_optimization_level": options.builder_optimization_level,
        "workspace_mb": options.workspace_mb,
    }
    if options.precision == "int8":
        from engines.calibration import require

        calibration = require(options.calibration_set, str(model_path))
        key["int8"] = {
            "method": options.int8_method,
            "mode": int8_mode(trt) if options.int8_method == "qdq" else "calibrator",
            "calibration": calibration.identity,
            "frames": calibration.frames,
        }
        if options.int8_method != "qdq" and options.keep_tail_fp16:
            key["int8"]["tail"] = "fp16"  # absent when off: the keys of engines built stay valid
        if key["int8"]["mode"] == "strongly_typed":
            key["int8"]["float_layers"] = "fp16"  # 11 builds the Q/DQ model's fp16 copy
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    base = Path(options.cache_dir).expanduser() / f"{model_path.stem}-{digest[:16]}"
    return CacheEntry(key, digest, base.with_suffix(".engine"), base.with_suffix(".json"))


def batch_model(model_path: Path, options: EngineOptions) -> Path:
    """The ONNX file to build for ``model_path``: its proven dynamic-batch copy when the model
    has a fixed batch of 1 and ``max_batch`` > 1 (:mod:`engines.dynamic_batch`, made once and
    cached in ``options.cache_dir``), else ``model_path`` itself (a dynamic model is untouched).
    """
    from engines import dynamic_batch

    model_path = Path(model_path)
    if options.max_batch <= 1 or not options.rewrite_fixed_batch or not model_path.is_file():
        return model_path
    if dynamic_batch.input_batch(model_path) != 1:
        return model_path
    rewrite = dynamic_batch.make_dynamic(model_path, Path(options.cache_dir).expanduser())
    if not rewrite.dynamic:
        logger.warning(
            "%s has a fixed batch of 1 and cannot be given a dynamic one: %s",
            model_path.name,
            rewrite.reason,
        )
        return model_path
    return rewrite.path


def engine_path(model_path: Path, options: EngineOptions) -> Path:
    """Where the engine for ``model_path`` and ``options`` is (or would be) cached."""
    return cache_entry(model_path, options).engine_path


def _key_diff(cached: dict[str, Any], wanted: dict[str, Any]) -> str:
    fields = sorted(set(cached) | set(wanted))
    diffs = [
        f"{k}: cached {cached.get(k)!r}, now {wanted.get(k)!r}"
        for k in fields
        if cached.get(k) != wanted.get(k)
    ]
    return "; ".join(diffs)


def _load_verified(entry: CacheEntry) -> bytes | None:
    """The cached engine bytes when the sidecar, size and sha256 all match; else None (logged)."""
    path = entry.engine_path
    if not path.exists():
        others = sorted(p.name for p in path.parent.glob(f"{path.stem.rsplit('-', 1)[0]}-*.engine"))
        if others:
            logger.info(
                "no cached engine for this model with these settings (key %s); other "
                "builds of it in %s: %s",
                entry.digest[:16],
                path.parent,
                ", ".join(others),
            )
        return None
    reason = None
    try:
        sidecar = json.loads(entry.sidecar_path.read_text())
    except FileNotFoundError:
        sidecar, reason = (
            None,
            f"its sidecar {entry.sidecar_path.name} is missing (interrupted build?)",
        )
    except (OSError, ValueError) as err:
        sidecar, reason = None, f"its sidecar {entry.sidecar_path.name} is unreadable ({err})"
    data = b""
    if sidecar is not None:
        if sidecar.get("key") != entry.key:
            reason = (
                "it was built for something else (another GPU, TensorRT or model?): "
                + _key_diff(sidecar.get("key") or {}, entry.key)
            )
        else:
            data = path.read_bytes()
            if len(data) != sidecar.get("engine_bytes"):
                reason = (
                    f"it is truncated or padded: {len(data)} bytes, the sidecar says "
                    f"{sidecar.get('engine_bytes')}"
                )
            elif hashlib.sha256(data).hexdigest() != sidecar.get("engine_sha256"):
                reason = "it is corrupted: its sha256 does not match the sidecar"
    if reason is not None:
        logger.warning(
            "cached TensorRT engine %s is not usable and will be rebuilt: %s", path, reason
        )
        return None
    return data


def invalidate(model_path: Path, options: EngineOptions, reason: str) -> None:
    """Delete a cached engine that TensorRT refused to load, logging why at WARNING."""
    entry = cache_entry(model_path, options)
    logger.warning(
        "cached TensorRT engine %s is not usable and will be rebuilt: %s", entry.engine_path, reason
    )
    entry.engine_path.unlink(missing_ok=True)
    entry.sidecar_path.unlink(missing_ok=True)


def build_or_load(
    model_path: Path, options: EngineOptions, progress: Progress | None = None
) -> tuple[bytes, bool]:
    """Return the serialized engine for ``model_path`` and whether it was built just now.

    A verified cached engine is returned as is; otherwise the engine is built from the ONNX
    file, written to the cache (engine, then sidecar, each atomically) and returned.

    Args:
        model_path: ONNX file with one input shaped (N, 3, H, W).
        options: precision, batch profile, workspace, optimization level, cache_dir.
        progress: called with short human-readable lines while a build runs.

    Example:
        data, built = build_or_load(Path("yolov3-tiny.onnx"), EngineOptions(max_batch=32))
    """
    cuda.set_device(options.device_index)
    options = resolve_int8_method(import_tensorrt(), options)  # what _build reads, keyed alike
    entry = cache_entry(model_path, options)
    data = _load_verified(entry)
    if data is not None:
        logger.info("using cached TensorRT engine %s", entry.engine_path)
        return data, False
    # One build per key: the key names the GPU model, not its number, so workers of two
    # identical GPUs want the same file; the second waits for the first's and loads it.
    lock = entry.engine_path.with_name(entry.engine_path.name + ".lock")

    def waiting() -> None:
        logger.info("another process is building %s; waiting for it", entry.engine_path.name)

    with file_lock(lock, waiting):
        data = _load_verified(entry)
        if data is not None:
            logger.info("using TensorRT engine %s, built meanwhile", entry.engine_path)
            return data, False
        return _build_and_store(model_path, options, progress, entry)


def _build_and_store(
    model_path: Path, options: EngineOptions, progress: Progress | None, entry: CacheEntry
) -> tuple[bytes, bool]:
    """Build the engine and write it and its sidecar to the cache (under the build lock)."""
    started = time.perf_counter()
    data = _build(Path(model_path), options, progress)
    build_s = time.perf_counter() - started
    atomic_write(entry.engine_path, data, durable=True)
    sidecar = {
        "key": entry.key,
        "key_sha256": entry.digest,
        "engine_bytes": len(data),
        "engine_sha256": hashlib.sha256(data).hexdigest(),
        "model": str(Path(model_path).resolve()),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_s": round(build_s, 1),
    }
    atomic_write(entry.sidecar_path, (json.dumps(sidecar, indent=2) + "\n").encode(), durable=True)
    logger.info(
        "built TensorRT engine %s in %.1f s (%.1f MiB)",
        entry.engine_path,
        build_s,
        len(data) / 2**20,
    )
    return data, True


def load_cuda_engine(
    model_path: Path, options: EngineOptions, runtime: Any, progress: Progress | None = None
) -> tuple[Any, bool]:
    """Deserialize the cached (or freshly built) engine; a file TensorRT refuses is rebuilt once.

    Returns:
        (ICudaEngine, built) where ``built`` says whether a build happened.
    """
    data, built = build_or_load(model_path, options, progress)
    engine = _deserialize(runtime, data)
    if engine is None and _out_of_memory(trt_logger().errors):
        # A full GPU is no reason to throw a good engine file away and rebuild it.
        raise EngineError(
            f"{model_path}: out of GPU memory loading the TensorRT engine"
            f"{_free_memory()}: free the GPU (nvidia-smi lists what holds it) "
            f"or lower engine.max_batch. TensorRT said: "
            f"{'; '.join(trt_logger().errors)}"
        )
    if engine is None and not built:
        errors = "; ".join(trt_logger().errors) or "no reason given"
        invalidate(model_path, options, f"TensorRT could not deserialize it ({errors})")
        data, built = build_or_load(model_path, options, progress)
        engine = _deserialize(runtime, data)
    if engine is None:
        errors = "; ".join(trt_logger().errors) or "no reason given"
        raise EngineError(
            f"{model_path}: TensorRT could not deserialize the engine it just built ({errors})"
        )
    return engine, built


def deserialize_copy(model_path: Path, options: EngineOptions, runtime: Any) -> Any:
    """Another ICudaEngine from the cached plan of ``model_path``: the same tactics as the
    first, with its own weights on the GPU (one per execution context; see
    PROFILES_PER_ENGINE)."""
    data, _ = build_or_load(model_path, options)
    engine = _deserialize(runtime, data)
    if engine is None:
        raise EngineError(
            f"{model_path}: TensorRT could not load another copy of the engine"
            f"{_free_memory()} ({'; '.join(trt_logger().errors) or 'no reason given'}); "
            "lower engine.contexts or engine.max_batch, or free the GPU"
        )
    return engine


def _deserialize(runtime: Any, data: bytes) -> Any:
    trt_logger().errors.clear()
    try:
        return runtime.deserialize_cuda_engine(data)
    except Exception as err:  # noqa: BLE001 - some versions raise instead of returning None
        logger.warning("TensorRT raised while deserializing an engine: %s", err)
        return None


def build_engine_command(model_path: Path, options: EngineOptions) -> Path:
    """``python -m streams build-engine``: build (or verify) the cached engine, print progress.

    Returns:
        The path of the cached engine.
    """
    trt = import_tensorrt()
    model_path = batch_model(model_path, options)

    def show(line: str) -> None:
        print(line, flush=True)

    entry = cache_entry(model_path, options)
    show(
        f"TensorRT {trt.__version__}, {cuda.device_info(options.device_index).name}: "
        f"{Path(model_path).name} {options.precision}, batch 1..{options.max_batch}, "
        f"optimization level {options.builder_optimization_level}"
    )
    if options.precision == "int8" and options.calibration_set is not None:
        method = entry.key["int8"]["method"]  # auto already resolved
        show(f"int8 by {method}, calibrated on {options.calibration_set.describe}")
    runtime = trt.Runtime(trt_logger())
    started = time.perf_counter()
    engine, built = load_cuda_engine(Path(model_path), options, runtime, show)
    elapsed = time.perf_counter() - started
    layers = engine_layers.summary(engine_layers.inspect(trt, engine, options.max_batch))
    del engine
    verb = "built" if built else "loaded from the cache"
    show(f"engine {verb} in {elapsed:.1f} s: {entry.engine_path}")
    show(f"layers by precision: {engine_layers.describe(layers)}")
    logger.info("build-engine: %s %s in %.1f s", entry.engine_path, verb, elapsed)
    return entry.engine_path


# -- the build itself -----------------------------------------------------------------------


def _build(model_path: Path, options: EngineOptions, progress: Progress | None) -> bytes:
    trt = import_tensorrt()
    log = trt_logger()
    log.errors.clear()
    emit = progress or (lambda line: logger.info("%s", line))
    builder = trt.Builder(log)
    flags = build_flags(trt, options.precision)
    onnx_path = model_path
    if options.precision == "fp16" and flags.strongly_typed:
        onnx_path = _fp16_onnx(model_path, Path(options.cache_dir).expanduser())
    calibrator = None
    if options.precision == "int8":
        onnx_path = _int8_onnx(trt, model_path, options, emit)
        if flags.strongly_typed:  # 11: the Q/DQ model's float layers in fp16, as INT8+FP16 do
            onnx_path = _fp16_onnx(onnx_path, Path(options.cache_dir).expanduser())
    network = builder.create_network(flags.network)
    parser = trt.OnnxParser(network, log)
    if not parser.parse_from_file(str(onnx_path)):
        raise EngineError(_parser_errors(parser, onnx_path))
    if network.num_inputs != 1:
        raise EngineError(f"{model_path}: expected one input tensor, found {network.num_inputs}")
    tensor = network.get_input(0)
    shape = tuple(tensor.shape)
    if len(shape) != 4 or shape[1] != 3 or min(shape[2:]) <= 0:
        raise EngineError(
            f"{model_path}: input {tensor.name!r} has shape {shape}; expected "
            "(N, 3, H, W) with fixed H and W"
        )

    config = builder.create_builder_config()
    workspace = options.workspace_mb * 2**20
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:
        config.max_workspace_size = workspace
    if options.precision == "fp16" and not flags.strongly_typed:
        if hasattr(builder, "platform_has_fast_fp16") and not builder.platform_has_fast_fp16:
            logger.warning(
                "this GPU has no fast fp16; building fp16 anyway as configured "
                "(engine.precision: fp32 may be as fast here)"
            )
    for name in flags.builder:
        config.set_flag(getattr(trt.BuilderFlag, name))
    _own_tactics_only(trt, config)
    if hasattr(config, "profiling_verbosity"):  # what each layer runs in: engines/engine_layers.py
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = options.builder_optimization_level

    if shape[0] == -1:
        opt = options.opt_batch or options.max_batch
        profile = builder.create_optimization_profile()
        profile.set_shape(
            tensor.name, (1, *shape[1:]), (opt, *shape[1:]), (options.max_batch, *shape[1:])
        )
        config.add_optimization_profile(profile)
    elif shape[0] != options.max_batch:
        logger.warning(
            "%s has a fixed batch of %d; building for it instead of max_batch=%d",
            model_path.name,
            shape[0],
            options.max_batch,
        )
    if options.precision == "int8" and options.int8_method != "qdq":
        calibrator = _implicit_calibrator(
            trt, builder, config, model_path, options, (tensor.name, shape), emit
        )
        if options.keep_tail_fp16:
            int8_tail.keep_tail_fp16(trt, network, config)

    cache_path = _timing_cache_path(trt, options, onnx_path)
    timing_cache = _load_timing_cache(config, cache_path)
    monitor = _progress_monitor(trt, emit)
    if monitor is not None and hasattr(config, "progress_monitor"):
        config.progress_monitor = monitor

    emit(
        f"building {model_path.name} ({options.precision}, batch 1..{options.max_batch}, "
        f"optimization level {options.builder_optimization_level}); this takes a while"
    )
    done = threading.Event()
    started = time.perf_counter()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_S):
            emit(f"  still building {model_path.name}: {time.perf_counter() - started:.0f} s")

    beat = threading.Thread(target=heartbeat, name="trt-build-heartbeat", daemon=True)
    beat.start()
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        done.set()
        beat.join()
        if calibrator is not None:
            calibrator.free()
    if serialized is None:
        raise EngineError(_build_failure(model_path, options, list(log.errors)))
    emit(f"built {model_path.name} in {time.perf_counter() - started:.1f} s")
    if timing_cache is not None:
        _save_timing_cache(trt, builder, config, cache_path)
    return bytes(serialized)


def _int8_onnx(trt: Any, model_path: Path, options: EngineOptions, emit: Progress) -> Path:
    """The ONNX an int8 build parses: the Q/DQ copy (qdq), or the model itself (calibrators)."""
    from engines import qdq, trt_calibrator
    from engines.calibration import require

    calibration = require(options.calibration_set, str(model_path))
    if options.int8_method == "qdq":
        return qdq.make_qdq(model_path, calibration, Path(options.cache_dir), emit)
    if not trt_calibrator.available(trt, options.int8_method):
        raise EngineError(
            f"engine.int8_method: {options.int8_method} needs TensorRT's implicit calibrators, "
            f"which TensorRT {trt.__version__} does not have (11 removed them); use "
            "engine.int8_method: qdq"
        )
    return model_path


def _implicit_calibrator(
    trt: Any,
    builder: Any,
    config: Any,
    model_path: Path,
    options: EngineOptions,
    named_shape: tuple[str, tuple[int, ...]],
    emit: Progress,
) -> Any:
    """Attach TensorRT's calibrator (entropy or minmax) with a fixed-batch calibration profile."""
    from engines import trt_calibrator

    name, shape = named_shape
    calibration = options.calibration_set
    assert calibration is not None  # _int8_onnx checked
    table = trt_calibrator.cache_path(
        trt,
        model_path,
        options.int8_method,
        calibration,
        Path(options.cache_dir),
        cuda.device_info(options.device_index),
    )
    if options.int8_method == "entropy":
        logger.warning(
            "engine.int8_method: entropy kept 0.23 of fp32's mAP50 on YOLOv3-tiny frames "
            "calibration never read (H200, TensorRT 8.6, level 0; minmax 0.95, qdq 0.87: "
            "docs/benchmarks.md); prefer auto (minmax here) or qdq for detectors"
        )
    if not table.is_file():
        emit(f"calibrating with TensorRT's {options.int8_method} calibrator")
    batch = trt_calibrator.BATCH if shape[0] == -1 else shape[0]
    calibrator = trt_calibrator.make_calibrator(
        trt, options.int8_method, calibration, (batch, *shape[1:]), table, emit
    )
    config.int8_calibrator = calibrator
    if shape[0] == -1 and hasattr(config, "set_calibration_profile"):
        profile = builder.create_optimization_profile()
        fixed = (batch, *shape[1:])
        profile.set_shape(name, fixed, fixed, fixed)
        config.set_calibration_profile(profile)
    return calibrator


def _own_tactics_only(trt: Any, config: Any) -> None:
    """Clear the cuBLAS, cuBLASLt and cuDNN tactic sources, keeping TensorRT's own kernels."""
    if not hasattr(config, "get_tactic_sources"):
        return
    mask = int(config.get_tactic_sources())
    for source in library_tactic_sources(trt):
        mask &= ~(1 << int(source))
    if not config.set_tactic_sources(mask):
        logger.warning("TensorRT refused tactic sources mask %#x; keeping its defaults", mask)


# What the last build did with its timing cache (benchmarks/trt_levels.py reports it).
timing_cache_status: dict[str, Any] = {}


def _timing_cache_path(trt: Any, options: EngineOptions, onnx_path: Path) -> Path:
    """One timing cache per (TensorRT, GPU, network, precision).

    Why per network: one cache shared by every model and precision was refused at the start
    of every build on TensorRT 8.6 (``Myelin error from unknown graph ... The timing cache will
    not be used!``): 8.6 keeps the timings of its Myelin-compiled subgraphs (YOLO heads'
    pointwise tails) in the cache under graph identities that only a build of the same network
    resolves, so a cache last written by another network is refused whole. A network's own
    cache is read by its next build (another batch profile, builder level, or a lost engine
    cache). Where TensorRT cannot even read back the cache it just wrote, it is not saved
    (:func:`_save_timing_cache`), so no later build pays to load a cache that will be refused;
    benchmarks/trt_levels.py measures the cached rebuild and reports which of the two happened.
    """
    device = cuda.device_info(options.device_index)
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", device.name).strip("-").lower()
    model = file_sha256(onnx_path)[:16]
    return (
        Path(options.cache_dir).expanduser()
        / f"timing-trt{trt.__version__}-{gpu}-{device.sm}-{model}-{options.precision}.cache"
    )


def _cache_errors(errors: list[str]) -> str:
    """The TensorRT errors that say a timing cache was refused, joined, or ''."""
    bad = [e for e in errors if "timing cache" in e.lower() or "myelin" in e.lower()]
    return " | ".join(bad)


def _load_timing_cache(config: Any, path: Path) -> Any:
    timing_cache_status.clear()
    timing_cache_status.update(path=str(path), loaded_bytes=0, rejected=None)
    if not hasattr(config, "create_timing_cache"):
        return None
    data = b""
    if path.exists():
        data = path.read_bytes()
    log = trt_logger()
    log.errors.clear()
    try:
        cache = config.create_timing_cache(data)
    except Exception as err:  # noqa: BLE001 - any failure means: start empty
        logger.warning(
            "TensorRT timing cache %s is unusable (%s); starting an empty one", path, err
        )
        cache = None
    refused = _cache_errors(list(log.errors))
    if data and (cache is None or refused):
        timing_cache_status["rejected"] = refused or "create_timing_cache failed"
        logger.warning(
            "TensorRT timing cache %s is unusable (%s); starting an empty one",
            path,
            refused or "no reason given",
        )
        data = b""
        cache = config.create_timing_cache(b"")
    log.errors.clear()
    if cache is None or not config.set_timing_cache(cache, False):
        logger.warning("TensorRT did not accept timing cache %s; building without it", path)
        return None
    if data:
        timing_cache_status["loaded_bytes"] = len(data)
        logger.info("loaded TensorRT timing cache %s (%d bytes)", path, len(data))
    return cache


def _save_timing_cache(trt: Any, builder: Any, config: Any, path: Path) -> None:
    """Write the build's timing cache, once TensorRT has shown it can read it back."""
    try:
        data = bytes(config.get_timing_cache().serialize())
        log = trt_logger()
        log.errors.clear()
        probe = builder.create_builder_config().create_timing_cache(data)
        refused = _cache_errors(list(log.errors))
        log.errors.clear()
        timing_cache_status.update(saved_bytes=len(data), roundtrip=not refused and bool(probe))
        if refused or probe is None:
            logger.warning(
                "TensorRT %s cannot read back the timing cache it just made (%s); not saving "
                "it, so later builds of this network tune from scratch",
                trt.__version__,
                refused or "no reason given",
            )
            return
        atomic_write(path, data, durable=True)
    except Exception as err:  # noqa: BLE001 - a timing cache only speeds up later builds
        logger.warning("could not save the TensorRT timing cache %s: %s", path, err)


def _progress_monitor(trt: Any, emit: Progress) -> Any:
    """A TensorRT IProgressMonitor (10.x; absent on 8.6) that reports top-level phases."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None:
                with contextlib.suppress(Exception):  # never let a print break the build
                    emit(f"  {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            pass

    return _Monitor()


def _parser_errors(parser: Any, onnx_path: Path) -> str:
    """Every ONNX parser error with the node it concerns."""
    nodes: list[Any] = []
    try:
        import onnx

        nodes = list(onnx.load(str(onnx_path), load_external_data=False).graph.node)
    except Exception as err:  # noqa: BLE001 - the parser has the real error; names are a bonus
        logger.debug("cannot read node names from %s: %s", onnx_path, err)
    lines = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        index = error.node()
        name = error.node_name() if hasattr(error, "node_name") else ""
        op = error.node_operator() if hasattr(error, "node_operator") else ""
        if (not name or not op) and 0 <= index < len(nodes):
            name = name or nodes[index].name
            op = op or nodes[index].op_type
        where = f"node {index} ({op} {name!r})" if index >= 0 else "graph"
        lines.append(f"  {where}: {error.code().name}: {error.desc()}")
    return (
        f"{onnx_path}: TensorRT's ONNX parser failed with {parser.num_errors} error(s):\n"
        + "\n".join(lines)
        + "\nCheck the opset (TensorRT 8.6 reads opsets 7-17), simplify the model "
        "(onnxsim), or use engine.backend: onnxruntime"
    )


def _out_of_memory(errors: list[str]) -> bool:
    """Whether TensorRT's errors say it ran out of GPU memory."""
    lowered = " | ".join(errors).lower()
    return any(
        s in lowered
        for s in (
            "out of memory",
            "outofmemory",
            "memoryallocation",
            "requested amount of gpu memory",
            "cudamalloc",
        )
    )


def _free_memory() -> str:
    """`` (X of Y GiB free now)`` for an out-of-memory message, or nothing if unknown."""
    try:
        free, total = cuda.mem_get_info()
    except EngineError:
        return ""
    return f" ({free / 2**30:.1f} of {total / 2**30:.1f} GiB free now)"


def _build_failure(model_path: Path, options: EngineOptions, errors: list[str]) -> str:
    text = " | ".join(errors) or "TensorRT gave no reason"
    if _out_of_memory(errors):
        return (
            f"{model_path}: out of GPU memory while building the TensorRT engine"
            f"{_free_memory()}: lower engine.max_batch ({options.max_batch}) or "
            f"engine.workspace_mb ({options.workspace_mb}), or free the GPU. "
            f"TensorRT said: {text}"
        )
    return f"{model_path}: TensorRT could not build an engine: {text}"


def _fp16_onnx(model_path: Path, cache_dir: Path) -> Path:
    """The FP16 copy of ``model_path`` (the model, or its Q/DQ copy for int8) that a strongly
    typed build needs, converted once."""
    from engines import fp16

    out = cache_dir / f"{model_path.stem}-{file_sha256(model_path)[:16]}-fp16.onnx"
    if not out.exists():
        logger.info("converting %s to FP16 for a strongly typed TensorRT build", model_path.name)
        fp16.convert_file(model_path, out)
    return out
