"""The level of additive white Gaussian noise in one image, estimated without a clean copy.

Chen, Zhu, Heng, "An Efficient Statistical Method for Image Noise Level Estimation", ICCV 2015 (Sec. 3, Alg. 1):
the covariance of an image's r×r patches has a few large eigenvalues (the image's structure) and many that equal
the noise variance σ². Sorted decreasingly, λ_1 ≥ … ≥ λ_d, the noise eigenvalues are the longest tail
λ_i … λ_d whose mean τ is also its median (as many eigenvalues above τ as below): σ² = τ. Unlike the median
absolute wavelet coefficient (Donoho and Johnstone, 1994), texture does not inflate it much, since texture lives
in the large eigenvalues.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PATCH = 8
SAMPLES_PER_DIMENSION = 50
MAX_PATCHES = 20_000


def patch_eigenvalues(image: torch.Tensor, patch: int = PATCH) -> torch.Tensor:
    """The decreasing eigenvalues of the covariance of the C·patch² vectors of the C×H×W ``image``'s patches
    (stride 1; at most :data:`MAX_PATCHES` of them, evenly spaced)."""
    columns = F.unfold(image[None].double(), patch)[0]  # (C·patch²) × number of patches
    if columns.shape[1] > MAX_PATCHES:
        columns = columns[:, torch.linspace(0, columns.shape[1] - 1, MAX_PATCHES).long()]
    centred = columns - columns.mean(dim=1, keepdim=True)
    covariance = centred @ centred.T / (columns.shape[1] - 1)
    return torch.linalg.eigvalsh(covariance).flip(0).clamp_min(0.0)


def patch_side(channels: int, height: int, width: int, largest: int = PATCH) -> int:
    """The largest patch side ≤ ``largest`` with at least :data:`SAMPLES_PER_DIMENSION` patches per dimension of a
    patch vector: with fewer, the sample covariance spreads the noise eigenvalues (Marchenko–Pastur) and the
    mean-equals-median tail, hence σ, comes out low."""
    for side in range(largest, 1, -1):
        if (height - side + 1) * (width - side + 1) >= SAMPLES_PER_DIMENSION * channels * side * side:
            return side
    return 2


def noise_sigma(image: torch.Tensor) -> float:
    """σ of the white Gaussian noise in a C×H×W ``image`` in [0, 1] (same units), by Chen et al.'s Alg. 1: the
    mean of the longest tail of the patch covariance's eigenvalues whose mean equals its median."""
    patch = patch_side(*image.shape[-3:])
    eigenvalues = patch_eigenvalues(image, patch)
    for start in range(eigenvalues.numel()):
        tail = eigenvalues[start:]
        mean = tail.mean()
        if int((tail > mean).sum()) >= int((tail < mean).sum()):
            return float(mean.sqrt())
    return float(eigenvalues[-1].sqrt())
