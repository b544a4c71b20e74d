"""Make the bundled samples of the dehazing, denoising, inpainting, super-resolution and watermark tasks from the
bundled zebra (``ddip/assets``).

    python scripts/make_samples.py [--out ddip/assets]

``hazy_zebra.png``: ``zebra_crop.png`` hazed as the dev case ``haze_building`` is (``t = exp(−1.6·d)``, ``d`` a
vertical ramp 1.0 → 0.2, airlight (0.9, 0.9, 0.92); :func:`ddip.synthetic.synthetic_haze`). ``noisy_zebra.png``:
``zebra_crop.png`` plus Gaussian noise of σ 25/255, seed 0, clipped (:func:`ddip.synthetic.gaussian_noise`), as the
dev cases ``noisy_f16`` and ``noisy_butterfly``. ``zebra_known.png``: half the pixels known (white), drawn with seed
0 (:func:`ddip.synthetic.pixel_mask`), and ``zebra_holes.png``: the zebra with the others black. ``zebra_x2.png``,
``zebra_x4.png``, ``zebra_x8.png``: the zebra shrunk 2, 4, 8 times with Lanczos
(:func:`ddip.synthetic.lanczos_downscale`). ``watermarked_zebra.png``: the zebra with the text "© ddip" in PIL's
default font, 36 px, a 2-px stroke, orange at opacity 0.5 (:func:`ddip.synthetic.watermark`), and
``zebra_watermark_hint.png``: the box around it grown by 4 px (white). ``python train.py task=dehaze``,
``task=denoise``, ``task=inpaint``, ``task=sr`` and ``task=watermark`` without ``data.image`` fit these and report
PSNR/SSIM against ``zebra_crop.png``. ``mixed_zebra1.png`` and ``mixed_zebra2.png``, the two mixtures
``task=separate_pair`` fits without ``data.images``: ``α·zebra + (1 − α)·grating`` with α = 0.3 and 0.7, the grating
a seeded texture of :func:`ddip.cases.texture` cropped to the zebra's size. ``clip/000.png`` … ``clip/007.png``,
the clip ``task=video`` fits without ``data.images``: the first ``tune`` case of the video suite at 64 px
(:func:`ddip.cases.video_cases`: a vase's ellipse moving over a snail photo). ``watermark_many/000.png`` …
``004.png``, the images ``task=watermark_many`` fits without ``data.images``, and ``watermark_many/clean/``, their
ground truth: the second ``tune`` case of the watermark_many suite at 96 px (:func:`ddip.cases.watermark_many_cases`:
five photos under one blue "stock" at opacity 0.57).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip.cases import texture, video_cases, watermark_many_cases
from ddip.data import sample_image_path
from ddip.io import load_image, save_image, save_result
from ddip.synthetic import (
    bounding_box,
    box_map,
    gaussian_noise,
    lanczos_downscale,
    pixel_mask,
    synthetic_haze,
    watermark,
)

HAZE = {"beta": 1.6, "airlight": (0.9, 0.9, 0.92)}
NOISE = {"sigma": 25.0, "seed": 0}
HOLES = {"missing": 0.5, "seed": 0}
FACTORS = (2, 4, 8)
WATERMARK = {"text": "© ddip", "top": 62, "left": 74, "height": 36, "colour": (1.0, 0.55, 0.1), "opacity": 0.5, "bold": 2}
HINT_MARGIN = 4
MIXTURE_ALPHAS = (0.3, 0.7)


CLIP_SIZE = 64
MANY_SIZE = 96


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(str(sample_image_path())).parent)
    args = parser.parse_args()
    clean = load_image(sample_image_path())
    hazy, _ = synthetic_haze(clean, HAZE["airlight"], beta=HAZE["beta"])
    save_image(args.out / "hazy_zebra.png", hazy)
    save_image(args.out / "noisy_zebra.png", gaussian_noise(clean, NOISE["sigma"], NOISE["seed"]))
    known = pixel_mask(tuple(clean.shape[-2:]), HOLES["missing"], HOLES["seed"])
    save_image(args.out / "zebra_known.png", known)
    save_image(args.out / "zebra_holes.png", clean * known)
    for factor in FACTORS:
        save_image(args.out / f"zebra_x{factor}.png", lanczos_downscale(clean, factor))
    watermarked, alpha = watermark(clean, **WATERMARK)
    save_image(args.out / "watermarked_zebra.png", watermarked)
    save_image(args.out / "zebra_watermark_hint.png", box_map(tuple(clean.shape[-2:]), bounding_box(alpha, HINT_MARGIN)))
    height, width = clean.shape[-2:]
    grating = texture(np.random.default_rng(0), max(height, width))[:, :height, :width]
    for index, alpha in enumerate(MIXTURE_ALPHAS, 1):
        save_image(args.out / f"mixed_zebra{index}.png", alpha * clean + (1 - alpha) * grating)
    clip = video_cases("tune", CLIP_SIZE)[0]
    for stem, frame in clip.images.items():
        if stem.startswith("frames/"):
            save_result(args.out / "clip", stem.removeprefix("frames/"), frame)
    many = watermark_many_cases("tune", MANY_SIZE)[1]
    for stem, image in many.images.items():
        save_result(args.out / "watermark_many", stem.removeprefix("images/"), image)
    made = "watermark_many/000–004.png, watermark_many/clean/000–004.png, clip/000–007.png, mixed_zebra{1,2}.png, hazy_zebra.png, noisy_zebra.png, zebra_known.png, zebra_holes.png, zebra_x{2,4,8}.png, watermarked_zebra.png"
    print(f"{made}, zebra_watermark_hint.png in {args.out}")


if __name__ == "__main__":
    main()
