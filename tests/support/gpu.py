"""GPU test helpers (imported only by tests that already checked for a GPU)."""

from __future__ import annotations

import numpy as np


def download_nv12(surface) -> np.ndarray:
    """A decoded NVDEC surface copied to the host as one ``(h * 3/2, w)`` NV12 array."""
    from engines import cuda

    rt = cuda.cudart()
    h, w = surface.height, surface.width
    host = np.empty((h * 3 // 2, w), np.uint8)
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
    cuda.check(rt.cudaEventSynchronize(surface.ready_event), "cudaEventSynchronize")
    cuda.check(
        rt.cudaMemcpy2D(host.ctypes.data, w, surface.y_ptr, surface.pitch, w, h, kind),
        "cudaMemcpy2D(Y)",
    )
    cuda.check(
        rt.cudaMemcpy2D(host[h:].ctypes.data, w, surface.uv_ptr, surface.pitch, w, h // 2, kind),
        "cudaMemcpy2D(UV)",
    )
    return host
