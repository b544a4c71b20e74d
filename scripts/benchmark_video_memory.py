"""Peak memory (max RSS) of ``task=video`` fitting all frames a step against windows of K (``task.frames_per_step``).

    python scripts/benchmark_video_memory.py [--frames 32 96] [--size 64] [--per-step 0 4] [--steps 10]
                                             [--override KEY=VALUE ...]

Each fit runs ``train.py`` as a user would, in its own process, on a clip of ``--frames`` frames of ``--size`` px:
the bundled clip's object and photos (the video suite's first tune case) moving over that many frames. Without
logger or checkpoint, one thread, an evaluation every 5 steps. The peak resident memory of that process (``os.wait4``'s
``ru_maxrss``: torch, Lightning and the data included) and its seconds per step are printed, one row per
(frames, K); ``--per-step 0`` is all frames a step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ddip.cases
from ddip.io import save_result


def write_clip(folder: Path, frames: int, size: int) -> Path:
    """The video suite's first tune clip, its motion spread over ``frames`` frames of ``size`` px; its folder."""
    with mock.patch.object(ddip.cases, "VIDEO_FRAMES", frames):
        case = ddip.cases.video_cases("tune", size)[0]
    for stem, image in case.images.items():
        if stem.startswith("frames/"):
            save_result(folder, stem, image)
    return folder / "frames"


def peak_memory(command: list[str], run_dir: Path) -> tuple[float, float]:
    """(peak RSS in MiB, seconds per step) of ``command``, a fit into ``run_dir`` (a failure ends the script)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"failed: {' '.join(command)}\n{process.stderr.read().decode()[-2000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return usage.ru_maxrss / 1024, metrics["seconds_per_step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[32, 96])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--per-step", type=int, nargs="+", default=[0, 4])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--override", nargs="*", default=[])
    args = parser.parse_args()
    print("| frames | frames a step | peak RSS (MiB) | s/step |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for frames in args.frames:
            clip = write_clip(Path(folder) / f"clip{frames}", frames, args.size)
            for index, per_step in enumerate(args.per_step):
                run_dir = Path(folder) / f"run_{frames}_{index}"
                command = [sys.executable, "train.py", "task=video", f"data.images={clip}", f"steps={args.steps}", "threads=1"]
                command += ["logger=none", "checkpoint=null", "trainer.enable_progress_bar=false", "callbacks.evaluation.every=5"]
                command += [f"task.frames_per_step={per_step}", f"hydra.run.dir={run_dir}", *args.override]
                rss, seconds = peak_memory(command, run_dir)
                print(f"| {frames} | {per_step or 'all'} | {rss:.0f} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
