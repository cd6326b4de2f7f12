"""What a benchmark reads besides the pipeline's own counters: GPU and NVDEC utilisation from
``nvidia-smi``, a process's CPU time, and the one-line CPU summary every benchmark prints."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

WARMUP_S = 3.0  # pipeline running before a timed window starts (decoders, engine, slots)


class GpuSampler:
    """Mean GPU and NVDEC utilisation from ``nvidia-smi`` while a measurement runs."""

    def __init__(self) -> None:
        self._process = None
        if shutil.which("nvidia-smi"):
            self._process = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu,utilization.decoder",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "500",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )

    def stop(self) -> dict:
        if self._process is None:
            return {}
        self._process.terminate()
        out, _ = self._process.communicate(timeout=5)
        rows = [
            [float(v) for v in line.split(",")]
            for line in out.splitlines()
            if line.count(",") == 1 and "N/A" not in line
        ]
        if not rows:
            return {}
        return {
            "gpu_util_pct": round(float(np.mean([r[0] for r in rows])), 1),
            "nvdec_util_pct": round(float(np.mean([r[1] for r in rows])), 1),
        }


def cpu_line(row: dict, top: int = 5) -> str:
    """``CPU 312% (capture-* 180%, completer 61%, ...)``: where the process spends its cores."""
    groups = list(row.get("threads_cpu_pct", {}).items())[:top]
    inner = ", ".join(f"{name} {pct:.0f}%" for name, pct in groups)
    return f"CPU {row.get('process_cpu_pct', float('nan')):.0f}% ({inner})"


def process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
