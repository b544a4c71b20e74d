"""Make separation cases with known layers from pairs of images, in the ``cases.json`` layout of evaluate.py.

    python scripts/make_mix_cases.py A1 B1 [A2 B2 ...] --out results/mix_cases/cases [--size 128]
    python scripts/evaluate.py --cases results/mix_cases/cases --tasks separate --out results/mix_cases

Each pair of images is resized to ``--size``² and mixed in equal parts, ``(a + b) / 2`` (the ``task=separate``
model, as the dev case ``mix_textures``). The case folder holds ``image.png`` (the mixture), ``layer1.png`` and
``layer2.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip.geometry import resize
from ddip.io import load_image, save_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, nargs="+", help="pairs of images: A1 B1 A2 B2 ...")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    if len(args.images) % 2:
        parser.error("give the images in pairs")
    cases = {}
    for first, second in zip(args.images[::2], args.images[1::2]):
        name = f"mix_{first.stem}_{second.stem}"
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        layers = [resize(load_image(path), (args.size, args.size)) for path in (first, second)]
        for stem, image in (("image", (layers[0] + layers[1]) / 2), ("layer1", layers[0]), ("layer2", layers[1])):
            save_image(folder / f"{stem}.png", image)
        cases[name] = {"task": "separate", "image": "image.png", "truth": {"layer1": "layer1.png", "layer2": "layer2.png"}}
    (args.out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{len(cases)} cases in {args.out}")


if __name__ == "__main__":
    main()
