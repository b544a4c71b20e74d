"""Seconds to save ``progress.png`` (:func:`ddip.io.save_progress`): this checkout's against another version of
``ddip/io.py``, alternating, on the same history and snapshots (20 evaluations, 3 snapshots of 5 RGB 64² panels);
the median of the runs after the first.

    git show f4b5444:ddip/io.py > /tmp/io_old.py && python research/progress_save_ab.py /tmp/io_old.py
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ddip.io


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="another version of ddip/io.py")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("other_io", args.other)
    other = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other)
    history = [{"step": s, "loss": 1 / (s + 1), "reconstruction": 0.5 / (s + 1), "score": 20 + s / 10, "iou": min(1, s / 100)} for s in range(0, 200, 10)]
    generator = torch.Generator().manual_seed(0)
    snapshots = [(step, {f"layer{i}": torch.rand(3, 64, 64, generator=generator) for i in range(5)}) for step in (50, 100, 200)]
    seconds: dict[str, list[float]] = {"this checkout": [], str(args.other): []}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for (name, times), module in zip(seconds.items(), (ddip.io, other)):
                start = time.perf_counter()
                module.save_progress(Path(folder) / f"{repeat}.png", history, snapshots, ["iou"])
                times.append(time.perf_counter() - start)
    for name, times in seconds.items():
        print(f"{name}: {statistics.median(times[1:]):.3f} s a save")


if __name__ == "__main__":
    main()
