"""What this machine can run: GPU, driver, CUDA, TensorRT, NVDEC, ONNX Runtime; and `auto`.

``python -m streams doctor`` prints :func:`report`; the pipeline calls :func:`choose_backend`
once at start and logs the reason, so a user can see why a GPU box ran on the CPU. Each probe
imports its library inside a try, so a missing or broken install shows up as a row instead
of an exception.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

logger = logging.getLogger(__name__)

OK, MISSING, ERROR = "ok", "missing", "error"
Row = tuple[str, str, str]


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:200]


def _nvidia_driver_release() -> str:
    """The kernel driver's release (``580.159.04``) from /proc, or ``""``."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return ""
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", text)
    return match.group(1) if match else ""


def _gpus() -> tuple[str, str, list[str]]:
    """(status, detail, names) of the CUDA GPUs cuda-python sees."""
    try:
        from engines import cuda

        cuda.cudart()
    except Exception as err:  # noqa: BLE001 - a broken install is a row, not a crash
        logger.debug("cuda-python: %s", err)
        return MISSING, "cuda-python not importable: pip install cuda-python", []
    rt = cuda.cudart()
    err, count = rt.cudaGetDeviceCount()
    if int(err) != 0:
        return MISSING, f"no CUDA GPU visible (cudaGetDeviceCount: {cuda.error_name(err)})", []
    if count == 0:
        return MISSING, "no CUDA GPU visible (cudaGetDeviceCount returned 0)", []
    names = []
    for i in range(count):
        try:
            info = cuda.device_info(i)
            names.append(
                f"cuda:{i} {info.name} ({info.sm}, {info.total_memory_bytes / 2**30:.0f} GiB)"
            )
        except Exception as err:  # noqa: BLE001 - a broken install is a row, not a crash
            names.append(f"cuda:{i} unreadable ({_short(err)})")
    return OK, "; ".join(names), names


def gpu_rows(status: str, detail: str, names: list[str]) -> list[Row]:
    """The GPU rows: one row for one GPU (or none); with several, a summary (what
    ``engine.device: all`` takes, and how many engine builds: one per GPU model) and a row
    per GPU. ``names``: ``cuda:N model (sm_XY, M GiB)`` or ``cuda:N unreadable (...)``."""
    if status != OK or len(names) <= 1:
        return [("GPU", status, detail)]
    models: dict[str, int] = {}
    for name in names:
        label = name.split(" ", 1)[1]
        if not label.startswith("unreadable"):
            model = label.split(",", 1)[0] + ")"  # "NVIDIA H200 (sm_90)": what the key names
            models[model] = models.get(model, 0) + 1
    builds = len(models)
    summary = (
        f"{len(names)} GPUs (engine.device: all takes every one): "
        + ", ".join(f"{n} x {m}" for m, n in models.items())
        + f"; {builds} TensorRT engine build{'s' if builds != 1 else ''} (one per GPU model)"
    )
    rows: list[Row] = [("GPU", OK, summary)]
    for name in names:
        index, label = name.split(" ", 1)
        rows.append(
            (f"GPU {index.split(':')[1]}", ERROR if label.startswith("unreadable") else OK, label)
        )
    return rows


def _tensorrt() -> Row:
    try:
        import tensorrt as trt
    except Exception as err:  # noqa: BLE001 - a broken install is a row, not a crash
        return (
            "TensorRT",
            MISSING,
            (
                f"not importable ({_short(err)}); GPU inference needs "
                "tensorrt>=8.6 (pip install tensorrt, or JetPack 6)"
            ),
        )
    from engines.tensorrt_build import MIN_TENSORRT, fp16_mode, version_tuple

    version = trt.__version__
    if version_tuple(trt) < MIN_TENSORRT:
        return ("TensorRT", ERROR, f"{version} is too old; streams needs >= 8.6")
    return ("TensorRT", OK, f"{version} (fp16 via {fp16_mode(trt).replace('_', ' ')})")


def _nvdec() -> Row:
    try:
        import PyNvVideoCodec as nvc
    except Exception as err:  # noqa: BLE001 - a broken install is a row, not a crash
        return (
            "NVDEC",
            MISSING,
            (
                f"PyNvVideoCodec not importable ({_short(err)}); decoding "
                "falls back to OpenCV/FFmpeg on the CPU"
            ),
        )
    version = getattr(nvc, "__version__", "") or _dist_version("PyNvVideoCodec")
    return ("NVDEC", OK, f"PyNvVideoCodec {version}".strip())


def _onnxruntime() -> Row:
    try:
        import onnxruntime as ort
    except Exception as err:  # noqa: BLE001 - a broken install is a row, not a crash
        return ("onnxruntime", MISSING, f"not importable ({_short(err)}): pip install onnxruntime")
    return (
        "onnxruntime",
        OK,
        f"{ort.__version__} (providers: {', '.join(ort.get_available_providers())})",
    )


def _dist_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001
        return ""


def report() -> list[Row]:
    """Rows of (item, status, detail); status is ``ok``, ``missing`` or ``error``.

    Example:
        for item, status, detail in report():
            print(f"{item:12} {status:8} {detail}")
    """
    rows: list[Row] = []
    gpu_status, gpu_detail, names = _gpus()
    rows.extend(gpu_rows(gpu_status, gpu_detail, names))
    release = _nvidia_driver_release()
    try:
        from engines import cuda

        cuda_driver = cuda.driver_version()
        cuda_runtime = cuda.runtime_version()
    except Exception as err:  # noqa: BLE001 - a broken install is a row, not a crash
        cuda_driver, cuda_runtime = "", ""
        logger.debug("cuda-python unavailable: %s", err)
    if cuda_driver:
        detail = f"NVIDIA {release}, " if release else ""
        rows.append(("driver", OK, f"{detail}supports CUDA {cuda_driver}"))
    elif release:
        rows.append(("driver", ERROR, f"NVIDIA {release} loaded, but CUDA cannot use it"))
    else:
        rows.append(("driver", MISSING, "no NVIDIA driver found"))
    if cuda_runtime:
        version = _dist_version("cuda-python") or "?"
        rows.append(("CUDA", OK, f"cuda-python {version} (runtime {cuda_runtime})"))
    else:
        rows.append(("CUDA", MISSING, "cuda-python not installed: pip install cuda-python"))
    rows.append(_tensorrt())
    rows.append(_nvdec())
    rows.append(_onnxruntime())
    return rows


def choose_backend(requested: str) -> tuple[str, str]:
    """Resolve ``engine.backend``: (backend, reason in words).

    ``auto`` picks TensorRT when ``tensorrt`` imports and a CUDA GPU is present, else ONNX
    Runtime on the CPU; an explicit choice is returned as is (the engine reports if it fails).
    """
    if requested != "auto":
        return requested, f"engine.backend is {requested!r} in the configuration"
    try:
        import tensorrt as trt
    except Exception as err:  # noqa: BLE001 - a broken install is a row, not a crash
        return "onnxruntime", f"TensorRT is not importable ({_short(err)})"
    from engines.tensorrt_build import MIN_TENSORRT, version_tuple

    if version_tuple(trt) < MIN_TENSORRT:
        return "onnxruntime", f"TensorRT {trt.__version__} is older than 8.6"
    status, detail, names = _gpus()
    if status != OK:
        return "onnxruntime", f"TensorRT {trt.__version__} imports but {detail}"
    return "tensorrt", f"TensorRT {trt.__version__} imports and a CUDA GPU is present ({names[0]})"
