"""Quality against ground truth on the dev cases, ddip beside classical baselines on the same images.

    python scripts/evaluate.py --cases ../shared/data/dev [--steps N] [--tasks seg] [--out results/evaluate]
                               [--override task.layerwise=false ...]

``cases.json`` in the cases folder maps each case to its task and files. For every case whose task ddip
runs (and that has ground truth), ddip runs with its default settings (the task's default ``steps`` unless
``--steps`` is given) and each baseline runs on the same image. Writes ``evaluate.md`` (a markdown table)
and ``evaluate.json`` (one record per case and method) into ``--out``; run dirs go under ``--out/runs``.

Baselines: seg — GrabCut (Rother et al., SIGGRAPH 2004; OpenCV, 5 iterations, box = image minus a
4-px border).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra import compose, initialize_config_dir  # noqa: E402

from ddip.io import load_image, load_map  # noqa: E402
from ddip.run import run  # noqa: E402
from ddip.tasks.seg import iou  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


def grabcut(image_path: Path, border: int = 4, iterations: int = 5) -> np.ndarray:
    """GrabCut foreground (H×W bool) initialised with the image minus ``border`` px as the box."""
    import cv2

    rgb = (load_image(image_path).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    height, width = rgb.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    box = (border, border, width - 2 * border, height - 2 * border)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(rgb[..., ::-1].copy(), mask, box, background, foreground, iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def run_ddip(case: dict, folder: Path, run_dir: Path, steps: int | None, extra: list[str]) -> dict:
    overrides = [f"task={case['task']}", "logger=csv", "trainer.enable_progress_bar=false", "~trainer.callbacks"]
    overrides.append(f"data.image={folder / case['image']}")
    if "gt_mask" in case:
        overrides.append(f"data.gt_mask={folder / case['gt_mask']}")
    if steps:
        overrides.append(f"steps={steps}")
    overrides += extra
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return run(cfg, run_dir)


def evaluate_seg(name: str, case: dict, folder: Path, out: Path, steps: int | None, extra: list[str]) -> list[dict]:
    metrics = run_ddip(case, folder, out / "runs" / name, steps, extra)
    rows = [
        {
            "case": name,
            "method": " ".join(["ddip (Double-DIP seg)"] + extra),
            "iou": metrics["iou_chosen"],
            "iou_final": metrics["iou_final"],
            "oracle_iou_raw": metrics.get("oracle_iou_raw"),
            "seconds": metrics["wall_seconds"],
            "seconds_per_step": metrics["seconds_per_step"],
            "steps": metrics["steps"],
        }
    ]
    started = time.perf_counter()
    mask = grabcut(folder / case["image"])
    seconds = time.perf_counter() - started
    gt = load_map(folder / case["gt_mask"], mask.shape)
    rows.append({"case": name, "method": "GrabCut (box − 4 px)", "iou": iou(torch.from_numpy(mask).float(), gt), "seconds": seconds})
    return rows


EVALUATORS = {"seg": (evaluate_seg, ("gt_mask",))}


def table(rows: list[dict]) -> str:
    columns = ["case", "method", "iou", "iou_final", "oracle_iou_raw", "steps", "seconds", "seconds_per_step"]
    columns = [c for c in columns if any(row.get(c) is not None for row in rows)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(rows: list[dict], out: Path, stem: str) -> None:
    """``<stem>.json`` (the records) and ``<stem>.md`` (the command and a table) in ``out``."""
    (out / f"{stem}.json").write_text(json.dumps(rows, indent=2) + "\n")
    command = f"python scripts/{stem}.py " + " ".join(sys.argv[1:])
    (out / f"{stem}.md").write_text(f"`{command}`\n\n" + table(rows))
    print(table(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, required=True, help="folder with cases.json")
    parser.add_argument("--tasks", nargs="*", default=sorted(EVALUATORS), help="tasks to evaluate")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    parser.add_argument("--steps", type=int, default=None, help="override the tasks' default steps")
    parser.add_argument("--out", type=Path, default=Path("results/evaluate"))
    parser.add_argument("--override", nargs="*", default=[], help="extra ddip overrides, e.g. task.layerwise=false")
    args = parser.parse_args()
    cases = json.loads((args.cases / "cases.json").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, case in cases.items():
        if case["task"] not in args.tasks or case["task"] not in EVALUATORS or (args.only and name not in args.only):
            continue
        evaluator, required = EVALUATORS[case["task"]]
        if not all(key in case for key in required):
            continue
        rows += evaluator(name, case, args.cases / name, args.out, args.steps, args.override)
        print(table(rows[-2:]), flush=True)
    write_results(rows, args.out, "evaluate")


if __name__ == "__main__":
    main()
