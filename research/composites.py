"""Segmentation of texture composites with a known mask: ddip beside GrabCut on the same images.

    python research/composites.py [--size 64] [--steps N] [--out results/composites] [--override KEY=VALUE ...]

Every ordered pair of the real textures in ``tests/data`` (grass, bookshelves, zebra stripes; crops of the
DIP repository's images) gives one case: an off-centre ellipse of the first over the second. ddip runs with
its default settings (automatic hints), GrabCut with the box = image minus 4 px. Writes ``composites.md``
and ``composites.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from evaluate import evaluate_case, table, write_results

from ddip.synthetic import texture_composite

TEXTURES = ("grass", "books", "stripes")


def make_case(inside: str, outside: str, size: int, folder: Path) -> dict:
    load = lambda name: np.asarray(Image.open(ROOT / "tests" / "data" / f"{name}.png").convert("RGB").resize((size, size)))
    image, mask = texture_composite(load(inside), load(outside))
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / "image.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(folder / "mask.png")
    return {"task": "seg", "image": "image.png", "truth": {"mask": "mask.png"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=None, help="override the task's default steps")
    parser.add_argument("--out", type=Path, default=Path("results/composites"))
    parser.add_argument("--override", nargs="*", default=[], help="extra ddip overrides")
    args = parser.parse_args()
    rows = []
    for inside, outside in itertools.permutations(TEXTURES, 2):
        folder = args.out / "cases" / f"{inside}_over_{outside}"
        case = make_case(inside, outside, args.size, folder)
        rows += evaluate_case(f"{inside} over {outside}", case, folder, args.out, args.steps, args.override)
        print(table(rows[-2:]), flush=True)
    for method in dict.fromkeys(row["method"] for row in rows):
        rows.append({"case": "mean", "method": method, "iou": float(np.mean([r["iou"] for r in rows if r["method"] == method]))})
    write_results(rows, args.out, "composites", ("iou",))

if __name__ == "__main__":
    main()
