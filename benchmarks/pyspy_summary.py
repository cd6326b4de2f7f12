"""Summarise a py-spy folded-stack profile (``--format raw``) by pipeline thread.

Why: a flame graph of 128 capture threads in six processes is unreadable; what part 4 of
issue 10 needs is "of the capture threads' samples, how many are in PyNvVideoCodec's Decode,
the demuxer, our copies, pacing, the board", and the same for the batcher and completer.

    python benchmarks/pyspy_summary.py pyspy-paced.txt.gz [--top 25]
"""

from __future__ import annotations

import argparse
import gzip
import re
from collections import Counter
from pathlib import Path

# The first of these functions found in a stack (root first) names its thread's job.
ROLES = (
    ("capture", re.compile(r"^_run \(.*capture/worker\.py")),
    ("batcher", re.compile(r"^_batch_loop ")),
    ("completer", re.compile(r"^_complete_loop ")),
    ("publisher", re.compile(r"publisher\.py")),
    ("stats", re.compile(r"^_stats_loop |stats\.py")),
    ("relay/worker", re.compile(r"worker_process\.py|relay\.py")),
)


def _frames(stack: str) -> list[str]:
    return [f for f in stack.split(";") if f]


def _short(frame: str) -> str:
    """``name (path/to/file.py:12)`` -> ``name (file.py)``; native frames keep their library."""
    m = re.match(r"^(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    name, where = m.groups()
    return f"{name} ({Path(where).name})"


def summarise(path: Path, top: int) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    roles: dict[str, Counter] = {}
    inclusive: dict[str, Counter] = {}
    totals: Counter = Counter()
    with opener(path, "rt") as lines:
        for line in lines:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = _frames(stack)
            role = "other"
            for frame in frames:
                hit = next((r for r, rx in ROLES if rx.search(frame)), None)
                if hit:
                    role = hit
                    break
            totals[role] += n
            roles.setdefault(role, Counter())[_short(frames[-1]) if frames else "?"] += n
            seen = {_short(f) for f in frames}
            inc = inclusive.setdefault(role, Counter())
            for f in seen:
                inc[f] += n
    out = []
    grand = sum(totals.values()) or 1
    out.append(f"{grand} samples")
    for role, n in totals.most_common():
        out.append(f"\n## {role}: {n} samples ({100 * n / grand:.1f} %)")
        out.append("  self (leaf frames):")
        for frame, k in roles[role].most_common(top):
            out.append(f"    {100 * k / n:5.1f} %  {frame}")
        out.append("  inclusive (in the stack):")
        for frame, k in inclusive[role].most_common(top):
            out.append(f"    {100 * k / n:5.1f} %  {frame}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
