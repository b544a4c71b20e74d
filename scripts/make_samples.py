"""Make the bundled samples of the dehazing and denoising tasks from the bundled zebra (``ddip/assets``).

    python scripts/make_samples.py [--out ddip/assets]

``hazy_zebra.png``: ``zebra_crop.png`` hazed as the dev case ``haze_building`` is (``t = exp(−1.6·d)``, ``d`` a
vertical ramp 1.0 → 0.2, airlight (0.9, 0.9, 0.92); :func:`ddip.synthetic.synthetic_haze`). ``noisy_zebra.png``:
``zebra_crop.png`` plus Gaussian noise of σ 25/255, seed 0, clipped (:func:`ddip.synthetic.gaussian_noise`), as the
dev cases ``noisy_f16`` and ``noisy_butterfly``. ``python train.py task=dehaze`` and ``task=denoise`` without
``data.image`` fit these and report PSNR/SSIM against ``zebra_crop.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ddip.data import sample_image_path
from ddip.io import load_image, save_image
from ddip.synthetic import gaussian_noise, synthetic_haze

HAZE = {"beta": 1.6, "airlight": (0.9, 0.9, 0.92)}
NOISE = {"sigma": 25.0, "seed": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(str(sample_image_path())).parent)
    args = parser.parse_args()
    clean = load_image(sample_image_path())
    hazy, _ = synthetic_haze(clean, HAZE["airlight"], beta=HAZE["beta"])
    save_image(args.out / "hazy_zebra.png", hazy)
    save_image(args.out / "noisy_zebra.png", gaussian_noise(clean, NOISE["sigma"], NOISE["seed"]))
    print(f"hazy_zebra.png and noisy_zebra.png in {args.out}")


if __name__ == "__main__":
    main()
