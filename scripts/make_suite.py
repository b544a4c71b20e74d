"""Make a benchmark suite: cases with known answers from the photos shipped with ddip, in the ``cases.json`` layout
of ``scripts/evaluate.py``, each case marked with its split (``tune`` or ``test``; a photo is in one split only).

    python scripts/make_suite.py seg --out suites/seg      # 7 structures × 3 photo pairs per split: 42 cases
    python scripts/make_suite.py haze --out suites/haze    # 3 depth kinds, 15 cases per split: 30 cases
    python scripts/make_suite.py noise --out suites/noise  # every photo at σ 15, 25, 50: 39 cases
    python scripts/make_suite.py inpaint --out suites/inpaint  # every photo, half its pixels or strokes missing: 26 cases
    python scripts/make_suite.py sr --out suites/sr        # every photo shrunk 2, 4, 8 times: 39 cases
    python scripts/make_suite.py mixtures --out suites/mixtures  # two mixtures of photos/textures: 12 cases
    python scripts/make_suite.py separation --out suites/separation  # one mixture of photos/textures: 24 cases
    python scripts/make_suite.py watermark --out suites/watermark  # every photo with two text watermarks: 26 cases
    python scripts/make_suite.py watermark_many --out suites/watermark_many --size 96  # five photos under one watermark: 6 cases
    python scripts/make_suite.py video --out suites/video --size 64  # a photo's region moving over another: 12 clips
    python scripts/evaluate.py --cases suites/seg --split test --out eval/seg_test

What the cases are: :mod:`ddip.cases`. ``--split`` makes one split only; ``--size`` the side (128 by default).
The same command always makes the same suite.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip.cases import SPLITS, TASK_OF, suite
from ddip.io import save_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(TASK_OF))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", choices=SPLITS, nargs="*", default=list(SPLITS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--count", type=int, default=15, help="haze: cases per split")
    parser.add_argument("--per-structure", type=int, default=3, help="seg: photo pairs per structure and split")
    args = parser.parse_args()
    if args.size < 16:
        parser.error(f"--size {args.size}: at least 16")
    if args.kind == "sr" and args.size % 8:
        parser.error(f"--size {args.size}: sr needs a multiple of 8 (the photos are shrunk up to 8 times)")
    manifest = {}
    for split in args.split:
        for case in suite(args.kind, split, args.size, args.count, args.per_structure):
            folder = args.out / case.name
            folder.mkdir(parents=True, exist_ok=True)
            for stem, image in case.images.items():
                save_result(folder, stem, image)
            manifest[case.name] = case.manifest() | {"split": split}
    (args.out / "cases.json").write_text(json.dumps(manifest, indent=1) + "\n")
    counts = {split: sum(case["split"] == split for case in manifest.values()) for split in args.split}
    print(f"{len(manifest)} {args.kind} cases in {args.out} ({', '.join(f'{n} {s}' for s, n in counts.items())})")


if __name__ == "__main__":
    main()
