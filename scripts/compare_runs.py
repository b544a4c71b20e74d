"""Compare the jobs of a sweep (``python train.py -m ...``) offline: one row per job, then mean ± std over seeds.

    python scripts/compare_runs.py multirun/2026-11-23/12-00-00 [--metrics psnr_final oracle_psnr ...]
                                   [--out DIR]

Every job dir below SWEEP_DIR that holds ``.hydra/overrides.yaml`` and ``metrics.json`` (or ``FAILED.txt``: a row
marked failed, with its error, counted apart in the summary) is read. The swept keys
are the overrides that differ between jobs; ``seed`` is averaged over. Writes into ``--out`` (default: the sweep
dir) ``runs.csv`` and ``runs.md`` (one row per job), ``summary.md`` (mean ± std per setting) and
``summary.png`` (each metric per setting, mean ± std). Needs no W&B.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

import yaml

DEFAULT_METRICS = ["psnr_final", "oracle_psnr", "oracle_psnr_step", "psnr_chosen", "chosen_step", "iou_chosen", "seconds_per_step"]


def job_order(path: Path) -> list:
    """Sort key of a job's path: Hydra's numbered job dirs in numeric order (2 before 10)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts]


def read_jobs(sweep: Path) -> list[dict]:
    """Each job as ``{"dir", "overrides": {key: value}, "metrics": {...}, "status"}``, in job order: a finished
    job (``metrics.json``) has status ``ok``; a failed one (``FAILED.txt``) ``failed: <its error>`` and no metrics."""
    jobs = []
    for overrides_path in sorted(sweep.rglob(".hydra/overrides.yaml"), key=lambda path: job_order(path.relative_to(sweep))):
        folder = overrides_path.parent.parent
        if (folder / "metrics.json").exists():
            status, metrics = "ok", json.loads((folder / "metrics.json").read_text())
        elif (folder / "FAILED.txt").exists():
            status, metrics = f"failed: {(folder / 'FAILED.txt').read_text().strip()}", {}
        else:
            continue  # not run, or still running
        pairs = [item.split("=", 1) for item in yaml.safe_load(overrides_path.read_text()) or [] if "=" in item]
        overrides = {key.lstrip("+~"): value for key, value in pairs}
        jobs.append({"dir": str(folder.relative_to(sweep)), "overrides": overrides, "metrics": metrics, "status": status})
    return jobs


def swept_keys(jobs: list[dict]) -> list[str]:
    """The override keys whose value differs between jobs (or that only some jobs set)."""
    keys = sorted({key for job in jobs for key in job["overrides"]})
    return [key for key in keys if len({job["overrides"].get(key) for job in jobs}) > 1]


def fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("" if value is None else str(value))


def markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def summarise(jobs: list[dict], keys: list[str], metrics: list[str]) -> tuple[list[str], list[list], dict]:
    """Mean ± std of each metric per setting of the swept keys other than ``seed``."""
    settings = [key for key in keys if key != "seed"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    failed: dict[tuple, int] = defaultdict(int)
    for job in jobs:
        setting = tuple(job["overrides"].get(key) for key in settings)
        groups[setting].append(job["metrics"])
        failed[setting] += job["status"] != "ok"
    header = settings + ["runs", "failed"] + metrics
    rows, stats = [], {}
    for setting, members in groups.items():
        row: list = [*setting, len(members) - failed[setting], failed[setting]]
        for metric in metrics:
            values = [m[metric] for m in members if isinstance(m.get(metric), (int, float))]
            mean = statistics.fmean(values) if values else None
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            stats[(setting, metric)] = (mean, std)
            row.append(f"{mean:.2f} ± {std:.2f}" if mean is not None else "")
        rows.append(row)
    return header, rows, stats


def plot(stats: dict, settings: list[tuple], metrics: list[str], labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.5), squeeze=False)
    names = [", ".join(str(v) for v in setting) or "all" for setting in settings]
    for axis, metric in zip(axes[0], metrics):
        means = [stats[(s, metric)][0] or 0.0 for s in settings]
        errors = [stats[(s, metric)][1] for s in settings]
        axis.bar(range(len(settings)), means, yerr=errors, capsize=3)
        axis.set_xticks(range(len(settings)), names, rotation=60, ha="right", fontsize=7)
        axis.set_title(metric)
    figure.suptitle(", ".join(labels) or "runs", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--metrics", nargs="*", default=None, help=f"metrics.json keys (default: those of {DEFAULT_METRICS} present)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    jobs = read_jobs(args.sweep)
    if not jobs:
        raise SystemExit(f"compare_runs: no finished or failed job (metrics.json or FAILED.txt + .hydra/overrides.yaml) under {args.sweep}")
    out = args.out or args.sweep
    out.mkdir(parents=True, exist_ok=True)
    keys = swept_keys(jobs)
    metrics = args.metrics or [m for m in DEFAULT_METRICS if any(m in job["metrics"] for job in jobs)]
    header = ["job", *keys, "status", *metrics]
    rows = [[job["dir"], *(job["overrides"].get(k) for k in keys), job["status"], *(job["metrics"].get(m) for m in metrics)] for job in jobs]
    with open(out / "runs.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    (out / "runs.md").write_text(markdown(header, rows))
    summary_header, summary_rows, stats = summarise(jobs, keys, metrics)
    (out / "summary.md").write_text(markdown(summary_header, summary_rows))
    settings = [tuple(row[: len(summary_header) - len(metrics) - 2]) for row in summary_rows]
    plot(stats, settings, metrics, [k for k in keys if k != "seed"], out / "summary.png")
    print(markdown(summary_header, summary_rows))
    for job in jobs:
        if job["status"] != "ok":
            print(f"job {job['dir']} {job['status']}")


if __name__ == "__main__":
    main()
