"""Quality of the automatic Double-DIP segmentation hints (``ddip.saliency``), against OpenCV's spectral residual.

For each case the script measures the precision of the foreground hint (fraction of its pixels inside the
true foreground), the precision of the background hint (fraction inside the true background), the coverage
of each hint (its pixels over the pixels of its true region) and the time the saliency map took. Cases: the
dev ``seg_textures`` image, synthetic composites (a shape of real image A pasted over real image B), and the
zebra photo, which has no ground truth: it is scored against a colour proxy (foreground = not grass-green).
Every case's figure (image | equalised saliency | hints, fg red, bg blue) is saved under ``--figures``.

    DATA=<image folder> python research/hint_quality.py --out hint_quality.md --figures /tmp/hints
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing ddip
from ddip.saliency import equalize_histogram, hints_from_saliency, saliency_map

DATA = Path(os.environ.get("DATA", "data"))  # the image folder of docs/results/README.md (dip/, doubledip/, guided_dip/, dev/)
TEXTURES = DATA / "doubledip" / "images"
DIP = DATA / "dip"
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Composite:
    """Image ``fg`` (a crop ``fg_box`` = left, top, right, bottom in relative units) pasted through a shape
    over image ``bg`` (crop ``bg_box``), at ``size`` = (width, height)."""

    name: str
    fg: Path
    fg_box: Box
    bg: Path
    bg_box: Box
    size: tuple[int, int]
    shape: str  # "ellipse", "blob" or "rect"
    centre: tuple[float, float]  # relative x, y
    radii: tuple[float, float]  # relative half-width, half-height


COMPOSITES = [
    Composite("tex16 ellipse on tex12", TEXTURES / "texture16.jpg", (0, 0, 0.6, 0.6), TEXTURES / "texture12.jpg",
              (0.2, 0.2, 1, 1), (96, 96), "ellipse", (0.45, 0.55), (0.3, 0.25)),
    Composite("barbara crop blob on tex16", DIP / "restoration" / "barbara.png", (0.0, 0.55, 0.3, 0.9),
              TEXTURES / "texture16.jpg", (0, 0, 1, 1), (112, 96), "blob", (0.55, 0.45), (0.3, 0.3)),
    Composite("zebra-back rect (top border) on library", DIP / "sr" / "zebra_GT.png", (0.35, 0.25, 0.6, 0.5),
              DIP / "inpainting" / "library.png", (0.0, 0.1, 0.5, 0.6), (128, 96), "rect", (0.35, 0.2), (0.2, 0.2)),
    Composite("library ellipse on tex12", DIP / "inpainting" / "library.png", (0.1, 0.2, 0.35, 0.5),
              TEXTURES / "texture12.jpg", (0, 0, 0.7, 0.7), (128, 96), "ellipse", (0.6, 0.4), (0.2, 0.2)),
    Composite("monkey fur blob on vase carpet", DIP / "feature_inversion" / "monkey.jpg", (0.7, 0.3, 1.0, 0.7),
              DIP / "inpainting" / "vase.png", (0.1, 0.7, 0.9, 1.0), (112, 80), "blob", (0.5, 0.5), (0.35, 0.38)),
    Composite("F16 blob (left border) on tex12", DIP / "denoising" / "F16_GT.png", (0.0, 0.55, 0.4, 0.95),
              TEXTURES / "texture12.jpg", (0.3, 0.0, 1, 0.7), (96, 96), "blob", (0.2, 0.5), (0.3, 0.3)),
    Composite("tex12 ellipse (50%) on cave jugs", TEXTURES / "texture12.jpg", (0, 0, 0.5, 0.5),
              DIP / "flash_no_flash" / "cave01_00_flash.jpg", (0, 0.1, 1, 0.6), (128, 80), "ellipse", (0.5, 0.5),
              (0.44, 0.36)),
    Composite("tex16 rect (bottom border) on grass", TEXTURES / "texture16.jpg", (0.3, 0.3, 0.7, 0.7),
              DATA / "guided_dip" / "Image_3.jpg", (0.0, 0.0, 0.35, 0.35), (80, 80), "rect", (0.6, 0.8), (0.22, 0.2)),
    Composite("kate face ellipse (15%) on barbara", DIP / "inpainting" / "kate.png", (0.35, 0.15, 0.65, 0.5),
              DIP / "restoration" / "barbara.png", (0.45, 0.3, 0.95, 0.8), (96, 96), "ellipse", (0.4, 0.45),
              (0.2, 0.24)),
    Composite("butterfly blob (corner) on peas", DATA / "guided_dip" / "Image_1.jpg", (0.2, 0.2, 0.8, 0.8),
              TEXTURES / "fotolia.jpg", (0.1, 0.1, 0.6, 0.8), (96, 112), "blob", (0.78, 0.8), (0.3, 0.28)),
]


def load_rgb(path: Path, box: Box = (0, 0, 1, 1), size: tuple[int, int] | None = None) -> np.ndarray:
    """An RGB image as float32 H×W×3 in [0, 1], cropped to the relative ``box`` and resized to ``size``."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    image = image.crop((round(box[0] * width), round(box[1] * height), round(box[2] * width), round(box[3] * height)))
    if size is not None:
        image = image.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0


def shape_mask(case: Composite, seed: int) -> np.ndarray:
    """The boolean foreground mask of ``case``: an ellipse, a rectangle, or a blob (an ellipse whose radius
    is modulated by a few random low harmonics of the polar angle)."""
    width, height = case.size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = (x + 0.5) / width - case.centre[0], (y + 0.5) / height - case.centre[1]
    rx, ry = case.radii
    if case.shape == "rect":
        return (np.abs(dx) <= rx) & (np.abs(dy) <= ry)
    radius = np.ones_like(x)
    if case.shape == "blob":
        rng = np.random.default_rng(seed)
        angle = np.arctan2(dy / ry, dx / rx)
        for harmonic in (2, 3, 4):
            radius += rng.uniform(0.06, 0.14) * np.cos(harmonic * angle + rng.uniform(0, 2 * np.pi))
    return (dx / rx) ** 2 + (dy / ry) ** 2 <= radius**2


def build_composite(case: Composite, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB float H×W×3, mask bool H×W) of a synthetic composite."""
    mask = shape_mask(case, seed)
    fg, bg = load_rgb(case.fg, case.fg_box, case.size), load_rgb(case.bg, case.bg_box, case.size)
    image = np.where(mask[..., None], fg, bg)
    return image, mask


def spectral_residual(image: np.ndarray) -> np.ndarray:
    """OpenCV's spectral-residual saliency (Hou & Zhang, CVPR 2007) of an RGB float image, in [0, 1]."""
    detector = cv2.saliency.StaticSaliencySpectralResidual_create()
    ok, saliency = detector.computeSaliency((image * 255).astype(np.uint8)[..., ::-1])
    assert ok
    saliency = cv2.resize(saliency.astype(np.float32), (image.shape[1], image.shape[0]))
    return (saliency - saliency.min()) / max(float(saliency.max() - saliency.min()), 1e-12)


def ours(image: np.ndarray) -> np.ndarray:
    """``ddip.saliency.saliency_map`` of an RGB float image."""
    return saliency_map(torch.from_numpy(image).permute(2, 0, 1).contiguous()).numpy()


METHODS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"ours": ours, "spectral residual": spectral_residual}


def hints(image: np.ndarray, method: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, ...]:
    """(saliency, fg hint, bg hint, seconds for the saliency map: the best of three runs) of ``image``."""
    seconds = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        saliency = method(image)
        seconds = min(seconds, time.perf_counter() - start)
    fg, bg = hints_from_saliency(torch.from_numpy(saliency))
    return saliency, fg.numpy() > 0.5, bg.numpy() > 0.5, seconds


def scores(fg: np.ndarray, bg: np.ndarray, mask: np.ndarray) -> tuple[float, float, float, float]:
    """(fg precision, bg precision, fg coverage, bg coverage) of the hints against the true foreground mask."""
    precision = (float(mask[fg].mean()), float((~mask)[bg].mean()))
    return (*precision, float(fg.sum() / mask.sum()), float(bg.sum() / (~mask).sum()))


def overlay(image: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """The image, dimmed, with the fg hint in red and the bg hint in blue (uint8)."""
    out = 0.5 * image
    out[fg] = 0.3 * out[fg] + 0.7 * np.array([1.0, 0.1, 0.1])
    out[bg] = 0.3 * out[bg] + 0.7 * np.array([0.1, 0.3, 1.0])
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def save_figure(path: Path, image: np.ndarray, saliency: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> None:
    """Image | equalised saliency | hint overlay, side by side, enlarged 2× (nearest)."""
    equalised = equalize_histogram(torch.from_numpy(saliency)).numpy() / 255.0
    panels = [image, np.repeat(equalised[..., None], 3, -1), overlay(image, fg, bg) / 255.0]
    strip = (np.concatenate(panels, axis=1) * 255).astype(np.uint8)
    Image.fromarray(strip).resize((strip.shape[1] * 2, strip.shape[0] * 2), Image.Resampling.NEAREST).save(path)


def non_green(image: np.ndarray) -> np.ndarray:
    """A proxy foreground for the zebra photo, which has no ground truth: the pixels that are not grass,
    grass being where green exceeds red and blue by 8/255 (cleaned by a 3×3 morphological opening)."""
    red, green, blue = np.moveaxis(image, -1, 0)
    grass = ((green > red + 8 / 255) & (green > blue + 8 / 255)).astype(np.uint8)
    return cv2.morphologyEx(grass, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) == 0


def cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB float image, foreground mask) of every evaluated case."""
    dev = DATA / "dev" / "seg_textures"
    truth = json.loads((DATA / "dev" / "cases.json").read_text())["seg_textures"]["truth"]
    dev_mask = np.asarray(Image.open(dev / truth["mask"]).convert("L")) > 127
    out = [("seg_textures (dev)", load_rgb(dev / "image.png"), dev_mask)]
    out += [(case.name, *build_composite(case, seed)) for seed, case in enumerate(COMPOSITES)]
    zebra = load_rgb(DIP / "sr" / "zebra_crop.png")
    return out + [("zebra (proxy truth: non-green pixels)", zebra, non_green(zebra))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("hint_quality.md"), help="markdown table to write")
    parser.add_argument("--figures", type=Path, default=Path("/tmp/hints"), help="folder for the PNG figures")
    args = parser.parse_args()
    args.figures.mkdir(parents=True, exist_ok=True)
    ours(np.zeros((8, 8, 3), np.float32))  # warm-up, so the first timing does not include one-off set-up
    rows = ["| case | method | fg precision | bg precision | fg coverage | bg coverage | seconds |", "|---" * 7 + "|"]
    for name, image, mask in cases():
        for method_name, method in METHODS.items():
            saliency, fg, bg, seconds = hints(image, method)
            stem = name.split(" (")[0].replace(" ", "_")
            save_figure(args.figures / f"{stem}_{method_name.replace(' ', '_')}.png", image, saliency, fg, bg)
            cells = " | ".join(f"{value:.3f}" for value in scores(fg, bg, mask))
            rows.append(f"| {name} | {method_name} | {cells} | {seconds:.3f} |")
    table = "\n".join(rows) + "\n"
    print(table)
    args.out.write_text(table)


if __name__ == "__main__":
    main()
