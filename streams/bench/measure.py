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
                    "--query-gpu=index,utilization.gpu,utilization.decoder",
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
        return utilisation(out)


def utilisation(out: str) -> dict:
    """Mean GPU and NVDEC utilisation from ``nvidia-smi`` lines ``index, gpu %, decoder %``:
    over the GPUs that were busy at all (an idle GPU of the host is not the run's), and per
    GPU."""
    rows = [
        [float(v) for v in line.split(",")]
        for line in out.splitlines()
        if line.count(",") == 2 and "N/A" not in line
    ]
    if not rows:
        return {}
    busy = {int(r[0]) for r in rows if r[1] > 0 or r[2] > 0} or {int(r[0]) for r in rows}
    used = [r for r in rows if int(r[0]) in busy]  # an idle GPU of the host is not the run's
    per_gpu = {
        str(g): [
            round(float(np.mean([r[1] for r in rows if int(r[0]) == g])), 1),
            round(float(np.mean([r[2] for r in rows if int(r[0]) == g])), 1),
        ]
        for g in sorted({int(r[0]) for r in rows})
    }
    return {
        "gpu_util_pct": round(float(np.mean([r[1] for r in used])), 1),
        "nvdec_util_pct": round(float(np.mean([r[2] for r in used])), 1),
        "per_gpu_util_pct": per_gpu,  # GPU -> [GPU %, NVDEC %]
    }


def cpu_line(row: dict, top: int = 5) -> str:
    """``CPU 312% (capture-* 180%, completer 61%, ...)``: where the process spends its cores."""
    groups = list(row.get("threads_cpu_pct", {}).items())[:top]
    inner = ", ".join(f"{name} {pct:.0f}%" for name, pct in groups)
    return f"CPU {row.get('process_cpu_pct', float('nan')):.0f}% ({inner})"


def child_pids(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (a supervisor's workers and bridges), from /proc;
    one that has exited (a zombie not yet reaped, or gone while the listing is read) is
    left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return sorted(found)


def process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
