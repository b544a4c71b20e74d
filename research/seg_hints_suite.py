"""How good are segmentation's automatic hints alone on a seg suite? The IoU of each split that ``hints=auto`` can
erode its hints from (:data:`ddip.saliency.HINT_SPLITS`: the saliency map's Otsu split, GrabCut started from it or
from a box) against each case's true mask, per case and per suite split: the fit follows these hints, so this bounds
what the automatic mode starts from. Seconds, no fit.

    python research/seg_hints_suite.py [--split tune test] [--size 128]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip.cases import SPLITS, suite
from ddip.saliency import HINT_SPLITS, saliency_map
from ddip.tasks.seg import iou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", nargs="*", choices=SPLITS, default=list(SPLITS))
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    for split in args.split:
        scores: dict[str, list[float]] = {name: [] for name in HINT_SPLITS}
        for case in suite("seg", split, args.size):
            image = case.images["image"]
            saliency = saliency_map(image)
            for name, method in HINT_SPLITS.items():
                scores[name].append(iou(method(image, saliency).float(), case.images[case.truth["mask"]][0]))
            print(f"{split} {case.name:45s}", " ".join(f"{name} {values[-1]:.3f}" for name, values in scores.items()))
        for name, values in scores.items():
            print(f"{split}: mean IoU of the {name} split {sum(values) / len(values):.3f} over {len(values)} cases")


if __name__ == "__main__":
    main()
