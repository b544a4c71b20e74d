"""Sweeps (``python train.py -m ...``): who a job is, how many threads it gets, and what the sweep prints last.

Hydra runs each job of a multirun with the same ``train.py``; these helpers read Hydra's runtime config so that
each job becomes its own W&B run inside one group named after the sweep dir, parallel jobs share the CPU
cores instead of oversubscribing them, and the end of a sweep prints the command that uploads its offline runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

TAGGED_GROUPS = ("task", "backbone", "scheduler", "stopping", "experiment")


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_identity(cfg: DictConfig) -> dict:
    """W&B ``group`` (the sweep dir), ``name`` (job number and overrides) and ``tags`` (the config group
    choices and the seed) of a multirun job; empty outside a sweep."""
    if not in_sweep():
        return {}
    hydra = HydraConfig.get()
    choices = hydra.runtime.choices
    tags = [f"{group}={choices[group]}" for group in TAGGED_GROUPS if choices.get(group) not in (None, "null")]
    overrides = " ".join(hydra.overrides.task)
    return {"group": str(hydra.sweep.dir), "name": f"{hydra.job.num}: {overrides}"[:120], "tags": tags + [f"seed={cfg.seed}"]}


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_per_job() -> int | None:
    """CPU threads for one job when a launcher runs ``n_jobs`` of them in parallel (cores // n_jobs), so jobs ×
    threads never exceed the cores; ``None`` when jobs run one at a time."""
    if not in_sweep():
        return None
    n_jobs = HydraConfig.get().launcher.get("n_jobs")
    if not n_jobs or n_jobs == 1:
        return None
    cores = cpu_cores()
    return max(1, cores // (n_jobs if n_jobs > 0 else cores))


def failed_jobs(sweep: Path, since: float = 0.0) -> dict[str, str]:
    """The jobs below ``sweep`` that failed (``FAILED.txt`` written after ``since``, a time stamp) and their errors."""
    failed = {}
    for path in sorted(sweep.rglob("FAILED.txt")):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime >= since:
                failed[str(path.parent.relative_to(sweep))] = path.read_text().strip()
    return failed


class SweepSummary(Callback):
    """Around a multirun: create its dir first (an Optuna study's storage lives in it), and at the end say where
    its runs are, how to upload their offline W&B runs and which jobs failed, with their errors; the sweep then
    exits with status 1."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.started = time.time()
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        print(f"ddip: sweep done: {sweep}; compare with: python scripts/compare_runs.py {sweep}")
        if list(sweep.glob("*/wandb/offline-run-*")):
            print(f"ddip: upload its W&B runs with: wandb sync {sweep}/*/wandb/offline-run-*")
        failed = failed_jobs(sweep, getattr(self, "started", 0.0) - 1.0)
        if failed:
            lines = [f"ddip: {len(failed)} job(s) failed:"] + [f"  {job}: {error}" for job, error in failed.items()]
            print("\n".join(lines), file=sys.stderr)
            sys.exit(1)
