"""The layer rules hold: a module that imports upwards fails here, naming the import.

The contracts live in pyproject.toml ([tool.importlinter]): streams on processors on engines,
and inside streams the CLI, benchmarks, scale-out, the runtime, then capture and the bus.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_loading_a_config_imports_neither_opencv_nor_the_engines_nor_the_http_stack():
    code = (
        "import sys, streams.config; "
        "print(sorted(m for m in ('cv2', 'onnxruntime', 'tensorrt', 'zmq', 'fastapi', 'uvicorn') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    assert out == "[]", out
