"""Segmentation cases with a known answer: an ellipse of one texture pasted over another."""

from __future__ import annotations

import numpy as np


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
