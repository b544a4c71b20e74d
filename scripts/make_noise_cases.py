"""Make denoising cases with known answers from clean photos, in the ``cases.json`` layout of evaluate.py.

    python scripts/make_noise_cases.py IMAGE [IMAGE ...] --out results/noise_cases/cases [--size 128] [--sigma 25]
    python scripts/evaluate.py --cases results/noise_cases/cases --tasks denoise --out results/noise_cases

Each image is centre-cropped to a square, resized to ``--size``² (antialiased bicubic) and given additive Gaussian noise of
standard deviation ``--sigma``/255 (seeded per case), clipped to [0, 1] and stored as 8-bit PNG, as the dev
cases ``noisy_f16`` and ``noisy_butterfly`` are. The case folder holds ``image.png`` (noisy) and ``clean.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip.geometry import resize
from ddip.io import load_image, save_image
from ddip.synthetic import gaussian_noise


def centre_square(image: torch.Tensor) -> torch.Tensor:
    """The largest centred square of a C×H×W image."""
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[:, top : top + side, left : left + side]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--sigma", type=float, default=25.0)
    args = parser.parse_args()
    cases = {}
    for index, path in enumerate(args.images):
        name = f"noisy_{path.stem}"
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        clean = resize(centre_square(load_image(path)), (args.size, args.size))
        save_image(folder / "image.png", gaussian_noise(clean, args.sigma, seed=index))
        save_image(folder / "clean.png", clean)
        cases[name] = {"task": "denoise", "image": "image.png", "truth": {"clean": "clean.png"}, "sigma": args.sigma}
    (args.out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    print(f"{len(cases)} cases in {args.out}")


if __name__ == "__main__":
    main()
