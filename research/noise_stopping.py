"""Which iterate would a ground-truth-free rule choose in denoising runs, and how good is it? Replays the rules on
the evaluation logs of finished runs (``scripts/evaluate.py`` with ``--override stopping.stop=false`` keeps the
whole curve): ES-WMV replayed on the logged variance with patience P (the average one lag later), the discrepancy principle (the first evaluated
iterate whose residual RMS against the noisy input falls to κ·σ̂, σ̂ by :func:`ddip.noise_level.noise_sigma`) for
several κ, and the earlier of the crossing and ES-WMV's detection so far (``stopping.noise_floor``). Prints per run and the mean PSNR of each rule, with the oracle.

    python research/noise_stopping.py RUNS_DIR CASES_DIR [--kappa 0.9 1.0 1.1]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip.io import load_image
from ddip.noise_level import noise_sigma

LAG = 99  # ES-WMV takes the exponential average (0.99) one lag after its detection


def curve(run: Path) -> tuple[list[tuple[int, float, float]], list[tuple[int, float]]]:
    """(step, residual RMS, PSNR) of each evaluation of a run's ``csv/metrics.csv``, and (step, VAR) of ES-WMV's
    logged windowed variance."""
    rows, variances = [], []
    with (run / "csv" / "metrics.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row.get("eval/score"):
                rows.append((int(row["step"]), 10 ** (-float(row["eval/score"]) / 20), float(row["eval/psnr"])))
            if row.get("stopping/variance"):
                variances.append((int(row["step"]), float(row["stopping/variance"])))
    return rows, variances


def es_wmv(variances: list[tuple[int, float]], patience: int, until: int) -> tuple[int | None, int | None]:
    """ES-WMV replayed on the logged VAR up to step ``until``: (its detection, the step it stops at or None)."""
    best, best_step = float("inf"), None
    for step, variance in variances:
        if step > until:
            break
        if variance < best:
            best, best_step = variance, step
        elif best_step is not None and step - best_step >= patience:
            return best_step, step
    return best_step, None


def at_step(rows: list[tuple[int, float, float]], step: int) -> float:
    """The PSNR of the evaluation nearest ``step``."""
    return min(rows, key=lambda row: abs(row[0] - step))[2]


def crossing(rows: list[tuple[int, float, float]], level: float) -> int:
    """The first evaluated step whose residual RMS is at most ``level`` (the last step if none is)."""
    return next((step for step, residual, _ in rows if residual <= level), rows[-1][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("cases", type=Path)
    parser.add_argument("--patience", type=int, default=500)
    parser.add_argument("--kappa", type=float, nargs="*", default=[0.95, 1.0, 1.05, 1.1, 1.15])
    args = parser.parse_args()
    totals: dict[str, list[float]] = {}
    for run in sorted(path for path in args.runs.iterdir() if (path / "csv" / "metrics.csv").is_file()):
        rows, variances = curve(run)
        sigma = noise_sigma(load_image(args.cases / run.name / "image.png"))
        detected, stopped = es_wmv(variances, args.patience, rows[-1][0])
        oracle = max(rows, key=lambda row: row[2])
        scores = {"ES-WMV": at_step(rows, detected + LAG if detected is not None else rows[-1][0]), "final": rows[-1][2], "oracle": oracle[2]}
        steps = {"ES-WMV": detected, "ES stop": stopped, "oracle": oracle[0], "oracle residual/σ̂": round(oracle[1] / sigma, 3)}
        for kappa in args.kappa:
            step = crossing(rows, kappa * sigma)
            scores[f"κ={kappa}"], steps[f"κ={kappa}"] = at_step(rows, step), step
            so_far, _ = es_wmv(variances, args.patience, step)
            scores[f"min(ES,κ={kappa})"] = at_step(rows, min(step, (so_far or step) + LAG))
        print(run.name, f"σ̂={sigma * 255:.1f} (last step {rows[-1][0]})", steps)
        print("   ", " ".join(f"{k} {v:.2f}" for k, v in scores.items()))
        for key, value in scores.items():
            totals.setdefault(key, []).append(value)
    for key, values in totals.items():
        print(f"{key:18s} mean {sum(values) / len(values):.2f} worst {min(values):.2f} ({len(values)} runs)")


if __name__ == "__main__":
    main()
