"""Fixtures shared by the stream tests."""

import pytest

from streams.capture.nvdec import nvdec_available


@pytest.fixture(scope="module")
def cuda_helpers():
    """``engines.cuda`` with GPU 0 current; skips (with the reason) where NVDEC is unusable."""
    ok, reason = nvdec_available()
    if not ok:
        pytest.skip(reason)
    from engines import cuda

    cuda.set_device(0)
    return cuda
