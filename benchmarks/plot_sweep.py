"""Plot a ``bench --sweep --json`` result: frames/s and p99 latency against streams.

Usage: python benchmarks/plot_sweep.py sweep.json docs/sweep-h100.png   (needs matplotlib)
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source: str, target: str) -> None:
    result = json.loads(open(source).read())
    fig, (rate, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for paced, style in ((True, "o-"), (False, "s--")):
        rows = [r for r in result["rows"] if r["paced"] == paced]
        label = "paced 30 fps cameras" if paced else "unpaced (as fast as possible)"
        rate.plot([r["streams"] for r in rows], [r["fps"] for r in rows], style, label=label)
        latency.plot(
            [r["streams"] for r in rows], [r["latency_p99_ms"] for r in rows], style, label=label
        )
    streams = sorted({r["streams"] for r in result["rows"]})
    rate.plot(streams, [30 * n for n in streams], ":", color="grey", label="30 fps x streams")
    rate.axhline(
        result["ceiling_fps"],
        color="red",
        linewidth=1,
        label=f"NVDEC decode-only ceiling {result['ceiling_fps']:.0f}",
    )
    rate.set(
        xlabel="1080p30 H.264 streams",
        ylabel="frames inferred and published per s",
        title="Throughput, one H100",
    )
    latency.axhline(100, color="red", linewidth=1, label="100 ms goal")
    latency.set(
        xlabel="1080p30 H.264 streams",
        ylabel="p99 frame-to-publish latency (ms)",
        title="p99 latency",
    )
    for axis in (rate, latency):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
