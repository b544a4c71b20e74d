"""Where the settled rule (``stopping=settled``) would end fits, for several tolerances, and their quality there: the
evidence behind the ``stopping.tolerance`` of seg and dehaze, and the separation measurement.

    python research/settled_stop.py EVAL_DIR [--tolerances 0.002 0.005 0.01] [--patience 200] [--seconds-per-step 0.034]
                                    [--metric iou_raw|psnr_formula|psnr_layers]

``EVAL_DIR`` is a ``scripts/evaluate.py --out`` folder of runs made with ``stopping=settled logger=csv`` (the rule logs
``stopping/changed``, the mean change of the task's decision over its patience, at each check: the share of mask
pixels changed for seg, the mean absolute change of the transmission (dehaze) or of both layers (separate)): with the default rule, tolerances above
the run's can be replayed; with ``stopping.tolerance=0`` a fit runs to its cap (unless its decision is frozen) and
any tolerance can. For a tolerance τ the fit ends at the first check with a change ≤ τ; the output is the
best-scored evaluation from the first choosable step (the first check's step − ``--patience``) up to then
(``history.csv``: ``score``, and ``--metric``: seg's ``iou_raw``, the raw mask's IoU, as the fit's own choice would be
scored before the guided filter; dehaze's ``psnr_formula``; separate's ``psnr_layers``). Reports per case and the mean, the worst, and the mean
steps, beside the full run's.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def read(path: Path, key: str) -> dict[int, float]:
    """``{step: value}`` of the rows of a csv that have ``key``."""
    with path.open() as handle:
        return {int(row["step"]): float(row[key]) for row in csv.DictReader(handle) if row.get(key)}


def stop_and_quality(run: Path, tolerance: float | None, patience: int, metric: str) -> tuple[int, float]:
    """(the step the fit ends at, the ``metric`` of its best-scored evaluation up to then); ``None``: the full run."""
    scores, quality = read(run / "history.csv", "score"), read(run / "history.csv", metric)
    changes = read(run / "csv" / "metrics.csv", "stopping/changed")
    end = max(scores)
    if tolerance is not None:
        end = next((step for step, changed in sorted(changes.items()) if changed <= tolerance), end)
    first = min(min(changes, default=end) - patience, end)  # the first choosable step
    candidates = [step for step in scores if first <= step <= end]
    chosen = max(candidates, key=lambda step: (scores[step], step))
    return end, quality[chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_dir", type=Path)
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.002, 0.005, 0.01, 0.02])
    parser.add_argument("--patience", type=int, default=200, help="the runs' stopping.patience")
    parser.add_argument("--seconds-per-step", type=float, default=None, help="to also report seconds (e.g. a 128-px fit's)")
    parser.add_argument("--metric", default="iou_raw", help="the history.csv column scored: iou_raw (seg), psnr_formula (dehaze), psnr_layers (separate)")
    args = parser.parse_args()
    runs = sorted(path.parent for path in args.eval_dir.glob("runs/*/history.csv"))
    settings: list[float | None] = [None, *args.tolerances]
    results = {tolerance: [stop_and_quality(run, tolerance, args.patience, args.metric) for run in runs] for tolerance in settings}
    digits = 3 if args.metric.startswith("iou") else 2
    names = ["full run" if t is None else f"τ = {t}" for t in settings]
    print("| case | " + " | ".join(names) + " |")
    print("|---" * (len(settings) + 1) + "|")
    for index, run in enumerate(runs):
        print(f"| {run.name} | " + " | ".join(f"{results[t][index][1]:.{digits}f} ({results[t][index][0]})" for t in settings) + " |")
    for label, reduce in (("mean", np.mean), ("worst", np.min)):
        print(f"| **{label} {args.metric}** | " + " | ".join(f"{reduce([value for _, value in results[t]]):.{digits}f}" for t in settings) + " |")
    steps = {t: np.mean([step for step, _ in results[t]]) for t in settings}
    print("| **mean steps** | " + " | ".join(f"{steps[t]:.0f}" for t in settings) + " |")
    if args.seconds_per_step:
        print("| **mean fit seconds** | " + " | ".join(f"{steps[t] * args.seconds_per_step:.0f}" for t in settings) + " |")


if __name__ == "__main__":
    main()
