"""How long ES-WMV waited for new variance minima: the evidence behind a stopping patience.

    python research/stopping_gaps.py RUN_DIR [RUN_DIR ...] [--out results/stopping_gaps.md]

Reads each run's ``csv/metrics.csv`` (``logger=csv``, as ``scripts/evaluate.py`` runs; ``stopping/variance`` is
logged every ``module.log_every`` steps) and reports the step of the last new minimum of the windowed variance
and the longest run of logged steps between two successive new minima before it. A patience longer than
that gap would have chosen the same iterate in that run.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def minima_gaps(path: Path) -> tuple[int, int]:
    """(step of the last new minimum, longest gap in steps between successive new minima) of one run's log."""
    best, last, longest = float("inf"), 0, 0
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if not row.get("stopping/variance"):
                continue
            step, variance = int(row["step"]), float(row["stopping/variance"])
            if variance < best:
                longest = max(longest, step - last) if best < float("inf") else 0
                best, last = variance, step
    return last, longest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines = ["| run | last new minimum (step) | longest gap between new minima (steps) |", "|---|---|---|"]
    for run in args.runs:
        last, longest = minima_gaps(run / "csv" / "metrics.csv")
        lines.append(f"| {run} | {last} | {longest} |")
    table = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"`python research/stopping_gaps.py {' '.join(map(str, args.runs))}`\n\n{table}")
    print(table)


if __name__ == "__main__":
    main()
