"""Cases with a known answer: an ellipse of one texture pasted over another (segmentation), a clear
image hazed by the atmospheric scattering model with a known depth ramp and airlight (dehazing), a clean
image with seeded Gaussian noise (denoising), a mask of missing pixels (inpainting), a shrunk image
(super-resolution) and a semi-transparent text watermark with its hint box (watermark removal)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ddip.haze import hazy_image
from ddip.io import to_uint8


def ellipse_mask(height: int, width: int, centre=(0.45, 0.55), radii=(0.24, 0.3)) -> np.ndarray:
    """An H×W bool mask of an axis-aligned ellipse; centre and radii as fractions of (height, width)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = centre[0] * height, centre[1] * width
    return ((y - cy) / (radii[0] * height)) ** 2 + ((x - cx) / (radii[1] * width)) ** 2 <= 1.0


def texture_composite(inside: np.ndarray, outside: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Paste the ellipse of ``inside`` over ``outside`` (two H×W×3 uint8 arrays of one size).

    Returns (H×W×3 uint8 image, H×W bool mask of the ellipse, True = foreground)."""
    if inside.shape != outside.shape:
        raise ValueError(f"textures differ in shape: {inside.shape} vs {outside.shape}")
    mask = ellipse_mask(*inside.shape[:2])
    return np.where(mask[..., None], inside, outside).astype(np.uint8), mask


def synthetic_haze(
    clear: torch.Tensor, airlight: tuple[float, float, float], beta: float = 1.6, far: float = 1.0, near: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Haze a C×H×W clear image in [0, 1] with ``t = exp(−β·d)`` (Beer–Lambert), ``d`` a vertical depth ramp
    from ``far`` (top row) to ``near`` (bottom row), and a constant ``airlight``.

    Returns (hazy C×H×W image, 1×H×W transmission)."""
    depth = torch.linspace(far, near, clear.shape[-2])[:, None].expand(clear.shape[-2:])
    transmission = torch.exp(-beta * depth)[None]
    colour = torch.tensor(airlight, dtype=clear.dtype)[:, None, None]
    return hazy_image(clear, transmission, colour).clamp(0.0, 1.0), transmission


def gaussian_noise(clean: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """``clean`` (in [0, 1]) plus additive white Gaussian noise of standard deviation ``sigma``/255 drawn from a
    generator seeded with ``seed``, clipped to [0, 1] (the dev cases ``noisy_f16`` and ``noisy_butterfly``)."""
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed)) * sigma / 255
    return (clean + noise).clamp(0.0, 1.0)


def pixel_mask(size: tuple[int, int], missing: float, seed: int) -> torch.Tensor:
    """An H×W map of known pixels (1) with a ``missing`` fraction of them, drawn independently, unknown (0): the
    Bernoulli mask of DIP's inpainting table (Ulyanov et al., CVPR 2018, Table 1: half the pixels missing)."""
    draws = torch.rand(size, generator=torch.Generator().manual_seed(seed))
    return (draws >= missing).float()


def lanczos_downscale(image: torch.Tensor, factor: int) -> torch.Tensor:
    """A C×H×W image in [0, 1] shrunk ``factor`` times with PIL's Lanczos filter, as DIP makes its low-resolution
    inputs (H and W multiples of ``factor``)."""
    height, width = image.shape[-2:]
    small = Image.fromarray(to_uint8(image)).resize((width // factor, height // factor), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def text_coverage(size: tuple[int, int], text: str, top: int, left: int, height: int, bold: int = 1) -> torch.Tensor:
    """The 1×H×W coverage in [0, 1] (antialiased) of ``text`` in PIL's default font at ``height`` px, its bounding
    box's top-left corner at (``top``, ``left``), thickened by a stroke of ``bold`` px: the shape of a text
    watermark."""
    font = ImageFont.load_default(size=height)
    canvas = Image.new("L", (size[1], size[0]), 0)
    draw = ImageDraw.Draw(canvas)
    x0, y0, _, _ = draw.textbbox((0, 0), text, font=font, stroke_width=bold)
    draw.text((left - x0, top - y0), text, fill=255, font=font, stroke_width=bold, stroke_fill=255)
    return torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0)[None]


def text_size(text: str, height: int, bold: int = 1) -> tuple[int, int]:
    """(height, width) in px of the bounding box of ``text`` as :func:`text_coverage` draws it."""
    x0, y0, x1, y1 = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=ImageFont.load_default(size=height), stroke_width=bold)
    return y1 - y0, x1 - x0


def watermark(
    clean: torch.Tensor,
    text: str,
    top: int,
    left: int,
    height: int,
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0),
    opacity: float = 0.5,
    bold: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A C×H×W ``clean`` image in [0, 1] with a semi-transparent text watermark: ``I = m·w + (1 − m)·c`` (Double-DIP
    Sec. 4.4), ``w`` the flat ``colour`` and ``m`` the ``opacity`` times the text's coverage (:func:`text_coverage`).

    Returns (watermarked C×H×W image, 1×H×W alpha map ``m``)."""
    alpha = opacity * text_coverage(tuple(clean.shape[-2:]), text, top, left, height, bold)
    ink = torch.tensor(colour, dtype=clean.dtype)[:, None, None]
    return (alpha * ink + (1.0 - alpha) * clean).clamp(0.0, 1.0), alpha


def bounding_box(alpha: torch.Tensor, margin: int = 0) -> tuple[int, int, int, int]:
    """The box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) around the non-zero pixels of a (1×)H×W map, grown by
    ``margin`` px on every side and kept inside the image: the hint box of a watermark."""
    rows, cols = torch.nonzero(alpha.reshape(alpha.shape[-2:]) > 0, as_tuple=True)
    height, width = alpha.shape[-2:]
    return (max(0, int(cols.min()) - margin), max(0, int(rows.min()) - margin),
            min(width, int(cols.max()) + 1 + margin), min(height, int(rows.max()) + 1 + margin))  # fmt: skip


def box_map(size: tuple[int, int], box: tuple[int, int, int, int]) -> torch.Tensor:
    """An H×W map, 1 inside ``box = (x0, y0, x1, y1)`` (pixels x0 ≤ x < x1, y0 ≤ y < y1) and 0 outside."""
    x0, y0, x1, y1 = box
    result = torch.zeros(size)
    result[y0:y1, x0:x1] = 1.0
    return result
