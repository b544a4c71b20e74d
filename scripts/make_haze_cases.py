"""Make dehazing cases with known answers from clear photos, in the ``cases.json`` layout of evaluate.py.

    python scripts/make_haze_cases.py IMAGE [IMAGE ...] --out results/haze_cases/cases [--size 128]
    python scripts/evaluate.py --cases results/haze_cases/cases --out results/haze_cases

Each image is resized to ``--size``² and hazed with ``t = exp(−β·d)``, ``d`` a vertical ramp 1.0 → 0.2
(:func:`ddip.synthetic.synthetic_haze`), cycling through the β values and airlight colours below, so the
cases differ in haze density and colour; ``--beta B --airlight R G B`` gives every case that one setting instead
(e.g. ``--beta 1.6 --airlight 0.9 0.9 0.92``, the recipe of the dev case ``haze_building``). The case folder holds ``image.png`` (hazy), ``clean.png`` and
``gt_transmission.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip.geometry import resize
from ddip.io import load_image, save_image
from ddip.synthetic import synthetic_haze

SETTINGS = [(1.6, (0.9, 0.9, 0.92)), (1.0, (0.8, 0.85, 0.9)), (2.5, (0.95, 0.9, 0.8))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--beta", type=float, help="one haze density for every case (with --airlight)")
    parser.add_argument("--airlight", type=float, nargs=3, metavar=("R", "G", "B"), help="one airlight for every case")
    args = parser.parse_args()
    if (args.beta is None) != (args.airlight is None):
        parser.error("--beta and --airlight go together")
    settings = SETTINGS if args.beta is None else [(args.beta, tuple(args.airlight))]
    cases = {}
    for path, (beta, airlight) in zip(args.images, itertools.cycle(settings)):
        name = f"haze_{path.stem}"
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        clear = resize(load_image(path), (args.size, args.size))
        hazy, transmission = synthetic_haze(clear, airlight, beta=beta)
        for stem, image in (("image", hazy), ("clean", clear), ("gt_transmission", transmission)):
            save_image(folder / f"{stem}.png", image)
        cases[name] = {"task": "dehaze", "image": "image.png", "truth": {"clean": "clean.png"}, "airlight": list(airlight), "beta": beta}
    (args.out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{len(cases)} cases in {args.out}")


if __name__ == "__main__":
    main()
