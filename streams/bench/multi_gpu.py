"""``bench --gpu --devices 0,1``: the camera curve on one GPU and on several, side by side.

One run measures, on the same host and clip:

* each GPU's ceilings (the bare engine, and NVDEC decode-only: the best of the same trials
  ``bench --gpu`` runs), then NVDEC on every GPU at once (the combined ceiling: the GPUs share
  the host's cores and PCIe, so the sum of separate runs may promise more);
* for each count N of the sweep, paced (cameras) and unpaced: N streams on the first GPU
  alone, and N x GPUs streams over every GPU (workers pinned, placed by load: what ``run``
  does), with each GPU's own figures from the merged ``stats`` (``pipeline.gpus``).

Its verdict (:func:`verdict`) is the acceptance bar for several GPUs: every GPU-count row at
least ``SCALING`` times its one-GPU row, paced rows at p99 <= ``P99_MS``, and the unpaced rows
at the top of the sweep at least ``OF_NVDEC`` of the combined NVDEC ceiling.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import replace
from pathlib import Path

from streams.config import Config, load_config

# The measuring modules (OpenCV, NumPy, ZeroMQ) load in run_multi_gpu: the CLI's argument
# parser uses parse_devices, and `--help` should not wait for OpenCV.

SCALING = 1.9  # two GPUs give at least 1.9x one GPU's frames/s
P99_MS = 100.0  # paced: the latency cameras allow
OF_NVDEC = 0.95  # unpaced: of the combined NVDEC ceiling
MULTI_GPU_SWEEP = "32,100"  # streams per GPU; each count runs on one GPU and on all


def parse_devices(text: str) -> list[int] | str:
    """``--devices``: ``0,1`` or ``cuda:0,cuda:1`` -> [0, 1]; ``all`` stays ``all``."""
    if text.strip() == "all":
        return "all"
    gpus = []
    for part in text.split(","):
        part = part.strip().removeprefix("cuda:")
        if not part.isdigit():
            raise argparse.ArgumentTypeError(
                f"--devices: expected GPU numbers like 0,1 or all, got {text!r}"
            )
        if int(part) in gpus:
            raise argparse.ArgumentTypeError(f"--devices: GPU {part} is listed twice")
        gpus.append(int(part))
    if len(gpus) < 2:
        raise argparse.ArgumentTypeError(f"--devices: give two GPUs or more, got {text!r}")
    return gpus


def on_gpu(config: Config, gpu: int) -> Config:
    """``config`` with its engine on ``cuda:gpu`` alone (the in-process ceilings)."""
    return replace(config, engine=replace(config.engine, device=f"cuda:{gpu}", devices=()))


def verdict(rows: list[dict], combined_nvdec_fps: float, gpus: int) -> dict:
    """Whether the several-GPU rows meet the bar (module docstring), and each check's figures.

    ``rows``: pairs measured side by side, each with ``paced``, ``streams_per_gpu``, ``one``
    (the first GPU's row) and ``all`` (every GPU's row); both rows have ``fps`` and
    ``latency_p99_ms``.
    """
    checks = []
    for row in rows:
        one, every = row["one"], row["all"]
        ratio = every["fps"] / one["fps"] if one["fps"] else 0.0
        want = SCALING * (gpus / 2)  # 1.9x on 2 GPUs, 3.8x on 4: 95 % of linear
        checks.append(
            {
                "what": f"{'paced' if row['paced'] else 'unpaced'} {row['streams_per_gpu']}/GPU "
                "scaling",
                "value": round(ratio, 3),
                "bar": round(want, 2),
                "ok": ratio >= want,
            }
        )
        if row["paced"]:
            checks.append(
                {
                    "what": f"paced {row['streams_per_gpu']}/GPU p99 ms on {gpus} GPUs",
                    "value": round(every["latency_p99_ms"], 1),
                    "bar": P99_MS,
                    "ok": every["latency_p99_ms"] <= P99_MS,
                }
            )
    unpaced = [r for r in rows if not r["paced"]]
    if unpaced and combined_nvdec_fps:
        top = max(unpaced, key=lambda r: r["streams_per_gpu"])
        share = top["all"]["fps"] / combined_nvdec_fps
        checks.append(
            {
                "what": f"unpaced {top['streams_per_gpu']}/GPU of the combined NVDEC ceiling",
                "value": round(share, 3),
                "bar": OF_NVDEC,
                "ok": share >= OF_NVDEC,
            }
        )
    return {"ok": bool(checks) and all(c["ok"] for c in checks), "checks": checks}


def _nvdec_ceiling(clip: Path, gpu: int, seconds: float) -> dict:
    from streams.bench.decode import run_sessions_in_processes
    from streams.bench.sweep import NVDEC_CEILING_TRIALS

    trials = [
        run_sessions_in_processes(clip, sessions, seconds, gpu, processes)
        for sessions, processes in NVDEC_CEILING_TRIALS
    ]
    return max(trials, key=lambda t: t["total_fps"])


def _nvdec_together(clip: Path, gpus: list[int], best: dict, seconds: float) -> list[dict]:
    """The best trial's sessions on every GPU at the same time."""
    from streams.bench.decode import run_sessions_in_processes

    results: dict[int, dict] = {}

    def one(gpu: int) -> None:
        results[gpu] = run_sessions_in_processes(
            clip, best["sessions"], seconds, gpu, max(2, best["processes"])
        )

    threads = [threading.Thread(target=one, args=(g,)) for g in gpus]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[g] for g in gpus]


def _row_line(label: str, row: dict) -> str:
    util = row.get("per_gpu_util_pct", {})

    def busy(gpu: int) -> str:
        pct = util.get(str(gpu))
        return f" (GPU {pct[0]:.0f}%, NVDEC {pct[1]:.0f}%)" if pct else ""

    per_gpu = "  ".join(
        f"GPU {g['gpu']} {g['fps']:.0f} fps/{g['streams']}{busy(g['gpu'])}"
        for g in row.get("gpus") or ()
    )
    return (
        f"{label:<10} {row['streams']:>5} {row['processes']:>5} {row['offered_fps']:>8.0f} "
        f"{row['fps']:>9.0f} {row['latency_p50_ms']:>7.1f} {row['latency_p99_ms']:>7.1f} "
        f"{row['dropped']:>7}  {per_gpu}"
    )


def run_multi_gpu(args: argparse.Namespace, gpus: list[int]) -> int:
    """The side-by-side curve (module docstring); prints it, writes ``--json``; exit code 0
    when the verdict holds, 1 when it does not."""
    from engines import cuda
    from streams.bench.pipeline import bench_config, bench_engine_loop, first_frames
    from streams.bench.supervised import bench_supervised
    from streams.runtime.wiring import open_engine
    from streams.scale.supervisor import resolve_processes

    config = load_config(args.config)
    config = replace(config, engine=replace(config.engine, backend="tensorrt"))
    clip = Path(args.clip)
    ceiling_s = min(args.duration, 10.0)
    result: dict = {"gpus": gpus, "clip": args.clip, "per_gpu": []}
    names = {g: cuda.device_info(g).name for g in gpus}
    print(f"bench --gpu on GPUs {', '.join(f'{g} ({names[g]})' for g in gpus)}", flush=True)
    for gpu in gpus:
        engine, model_name = open_engine(on_gpu(config, gpu))
        try:
            images = first_frames([args.clip], engine.max_batch)
            bare = bench_engine_loop(engine, images, ceiling_s)
        finally:
            engine.close()
        nvdec = _nvdec_ceiling(clip, gpu, ceiling_s)
        result["per_gpu"].append({"gpu": gpu, "name": names[gpu], "engine": bare, "nvdec": nvdec})
        result["model"] = model_name
        print(
            f"GPU {gpu}: bare engine {bare['img_per_s']:8.0f} img/s, NVDEC decode-only "
            f"{nvdec['total_fps']:8.0f} frames/s ({nvdec['sessions']} sessions in "
            f"{nvdec['processes']} processes)",
            flush=True,
        )
    best = max((p["nvdec"] for p in result["per_gpu"]), key=lambda t: t["total_fps"])
    together = _nvdec_together(clip, gpus, best, ceiling_s)
    combined = sum(t["total_fps"] for t in together)
    result["nvdec_together"] = together
    result["combined_nvdec_fps"] = combined
    parts = " + ".join(f"{t['total_fps']:.0f}" for t in together)
    separately = sum(p["nvdec"]["total_fps"] for p in result["per_gpu"])
    print(
        f"NVDEC on every GPU at once: {combined:8.0f} frames/s ({parts}); "
        f"separately {separately:.0f}",
        flush=True,
    )
    print(
        f"{'run':<10} {'streams':>5} {'procs':>5} {'offered':>8} {'inferred':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'drops':>7}  per GPU (fps/streams)",
        flush=True,
    )
    rows = []
    counts = [int(n) for n in args.sweep.split(",")]
    for paced in (True, False):
        for n in counts:
            pair = {"paced": paced, "streams_per_gpu": n}
            for label, use in (("one", gpus[:1]), ("all", gpus)):
                cfg = bench_config(config, n * len(use), paced=paced, clip=args.clip)
                cfg = replace(cfg, engine=replace(cfg.engine, devices=tuple(use)))
                processes = resolve_processes(cfg, use)[0]
                row = bench_supervised(cfg, processes, args.duration, args.warmup, gpus=use)
                pair[label] = row
                print(_row_line(f"{'paced' if paced else 'unpaced'} {len(use)}G", row), flush=True)
            ratio = pair["all"]["fps"] / pair["one"]["fps"] if pair["one"]["fps"] else 0.0
            print(f"{'':<10} {len(gpus)} GPUs / 1 GPU: {ratio:.2f}x", flush=True)
            rows.append(pair)
    result["rows"] = rows
    result["verdict"] = verdict(rows, combined, len(gpus))
    for check in result["verdict"]["checks"]:
        mark = "ok  " if check["ok"] else "FAIL"
        print(f"{mark} {check['what']}: {check['value']} (bar {check['bar']})", flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(f"verdict: {'ok' if result['verdict']['ok'] else 'FAIL'}", file=sys.stderr)
    return 0 if result["verdict"]["ok"] else 1
