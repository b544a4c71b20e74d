"""How good are segmentation's automatic hints alone on a seg suite? The IoU of the saliency map's Otsu split
(:func:`ddip.saliency.saliency_map`, :func:`ddip.saliency.otsu_threshold`) against each case's true mask, per case
and per split: the fit follows these hints, so this bounds what the automatic mode starts from. Seconds, no fit.

    python research/seg_hints_suite.py [--split tune test] [--size 128]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip.cases import SPLITS, suite
from ddip.saliency import otsu_threshold, saliency_map
from ddip.tasks.seg import iou


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", nargs="*", choices=SPLITS, default=list(SPLITS))
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    for split in args.split:
        scores = []
        for case in suite("seg", split, args.size):
            saliency = saliency_map(case.images["image"])
            scores.append(iou((saliency > otsu_threshold(saliency)).float(), case.images["gt_mask"][0]))
            print(f"{split} {case.name:45s} {scores[-1]:.3f}")
        print(f"{split}: mean IoU of the saliency's Otsu split {sum(scores) / len(scores):.3f} over {len(scores)} cases")


if __name__ == "__main__":
    main()
