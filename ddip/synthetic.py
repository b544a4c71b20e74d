"""Cases with a known answer: an ellipse of one texture pasted over another (segmentation), a clear
image hazed by the atmospheric scattering model with a known depth ramp and airlight (dehazing), a clean
image with seeded Gaussian noise (denoising), a mask of missing pixels (inpainting) and a shrunk image
(super-resolution)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

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
