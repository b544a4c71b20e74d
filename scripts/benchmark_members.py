"""Fits per hour of batched members (``members.seed=[...]``, one process) against separate fits as a parallel sweep.

    python scripts/benchmark_members.py [--task seg] [--size 128] [--steps 300] [--members 8] [--jobs 2]
                                        [--sweep-fits 2] [--member-jobs 1] [--override KEY=VALUE ...]

Both sides run ``train.py`` as a user would, on a texture image of ``--size`` px, without logger or checkpoints,
and are timed by wall clock, start-up included:

- ``members``: one command with ``members.seed=[0..members-1]`` (torch's threads: all cores), or with
  ``--member-jobs J`` J batches of ``members / J`` seeds as a joblib sweep of J jobs (``cores // J`` threads each);
- ``sweep``: ``-m hydra/launcher=joblib hydra.launcher.n_jobs=JOBS seed=0..`` (``cores // jobs`` threads a job),
  ``--sweep-fits`` fits (a multiple of ``--jobs``: its seconds per fit are those of any number of such rounds).

Prints seconds per fit of each and their ratio (sweep over members: the members' speed-up in fits per hour).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.benchmark import texture


def timed(command: list[str]) -> float:
    """Wall-clock seconds of ``command`` run from the checkout (its output discarded; a failure ends the script)."""
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def joblib_sweep(command: list[str], jobs: int, swept: str, folder: str) -> list[str]:
    """``command`` with the ``swept`` override: one run into ``folder``, or for ``jobs`` > 1 a joblib sweep there."""
    if jobs == 1:
        return [*command, swept, f"hydra.run.dir={folder}"]
    launcher = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}", f"hydra.sweep.dir={folder}"]
    return [*command[:2], "-m", *command[2:], *launcher, swept]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="seg")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sweep-fits", type=int, default=2)
    parser.add_argument("--member-jobs", type=int, default=1)
    parser.add_argument("--override", nargs="*", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        common = [sys.executable, "train.py", f"task={args.task}", f"data.image={texture(args.size, Path(folder))}", f"steps={args.steps}"]
        common += ["logger=none", "checkpoint=null", "trainer.enable_progress_bar=false", *args.override]
        per_batch = args.members // args.member_jobs
        batches = ",".join(f"[{','.join(map(str, range(b * per_batch, (b + 1) * per_batch)))}]" for b in range(args.member_jobs))
        members = joblib_sweep(common, args.member_jobs, f"members.seed={batches}", f"{folder}/members")
        sweep = joblib_sweep(common, args.jobs, f"seed={','.join(map(str, range(args.sweep_fits)))}", f"{folder}/sweep")
        per_fit = {"members": timed(members) / args.members, "sweep": timed(sweep) / args.sweep_fits}
    for name, command in (("members", members), ("sweep", sweep)):
        print(f"{name}: {per_fit[name]:.2f} s per fit: {' '.join(command[1:])}")
    print(f"ratio (sweep / members, fits per hour): {per_fit['sweep'] / per_fit['members']:.2f}")


if __name__ == "__main__":
    main()
