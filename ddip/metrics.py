"""Image quality against a reference (torchmetrics): PSNR and SSIM of images in [0, 1], C×H×W or B×C×H×W."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def _batched(image: torch.Tensor) -> torch.Tensor:
    return image.reshape(-1, *image.shape[-3:])


def psnr(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1]."""
    return float(peak_signal_noise_ratio(_batched(estimate), _batched(reference), data_range=1.0))


def ssim(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """SSIM (Wang et al. 2004, 11×11 Gaussian window) of two images in [0, 1]."""
    return float(structural_similarity_index_measure(_batched(estimate), _batched(reference), data_range=1.0))


def quality(estimate: torch.Tensor, reference: torch.Tensor, suffix: str = "") -> dict[str, float]:
    """``psnr_<suffix>`` and ``ssim_<suffix>`` of ``estimate`` against ``reference`` (a result's metrics.json keys);
    without a suffix ``psnr`` and ``ssim`` (a benchmark's record, :mod:`ddip.benchmark`)."""
    end = f"_{suffix}" if suffix else ""
    return {f"psnr{end}": psnr(estimate, reference), f"ssim{end}": ssim(estimate, reference)}
