"""InvDN, the invertible denoising network (Liu et al., "Invertible Denoising Network: A Light Solution for Real
Noise Removal", CVPR 2021, Sec. 3, Fig. 2).

Forward: ``levels`` Haar down-samplings, each followed by invertible affine coupling blocks, map a noisy
C×H×W image to 4^levels·C channels at H/2^levels × W/2^levels (3 → 12 → 48 at the official two levels): the first
C channels are a clean low-resolution image, the rest a latent holding the noise and the high frequencies.
Reverse: the latent is replaced by a Gaussian sample ``z ~ N(0, gaussian_scale² I)`` and the network is run
backwards, so the noise it carried is dropped and the high frequencies are regenerated (:meth:`InvDN.denoise`).

The official configuration (2 levels × 8 blocks, 64-feature subnets, clamp 1) has 2,640,960 trainable
parameters, the paper's 2.64 M; the Haar filters are fixed buffers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ddip.errors import check_range
from ddip.geometry import Crop, dihedral, dihedral_inverse, padded_size, reflect_pad

HAAR_BANDS = 4


class HaarDownsampling(nn.Module):
    """The orthogonal 2×2 Haar wavelet transform as a fixed stride-2 convolution, channel by channel.

    Four ±1 filters (the average and the horizontal, vertical and diagonal details) divided by 4 give
    ``(LL, LH, HL, HH)`` of each input channel; the outputs are ordered band-major, so the first C channels are
    the LL bands (a half-size copy of the input). The filters ``W`` satisfy ``W Wᵀ = 4 I``, so the inverse is the
    transposed convolution with the same filters, exactly (no learned parameter).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        signs = torch.tensor([[[1, 1], [1, 1]], [[1, -1], [1, -1]], [[1, 1], [-1, -1]], [[1, -1], [-1, 1]]], dtype=torch.float32)
        self.register_buffer("weight", signs[:, None].repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        batch, channels, height, width = x.shape
        if not reverse:
            bands = F.conv2d(x, self.weight, stride=2, groups=self.channels) / HAAR_BANDS
            bands = bands.reshape(batch, self.channels, HAAR_BANDS, height // 2, width // 2).transpose(1, 2)
            return bands.reshape(batch, channels * HAAR_BANDS, height // 2, width // 2)
        grouped = x.reshape(batch, HAAR_BANDS, self.channels, height, width).transpose(1, 2)
        grouped = grouped.reshape(batch, channels, height, width)
        return F.conv_transpose2d(grouped, self.weight, stride=2, groups=self.channels)


class ResidualSubnet(nn.Module):
    """The coupling functions F, G, H of InvDN (its "ResBlock"): conv3×3 → LeakyReLU(0.2) → conv3×3 →
    LeakyReLU(0.2), then a conv3×3 over the input concatenated with these features."""

    def __init__(self, in_channels: int, out_channels: int, features: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, features, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(features, features, 3, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.out = nn.Conv2d(features + in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([x, self.body(x)], dim=1))


class AffineCoupling(nn.Module):
    """InvDN's invertible block: with ``x = (x1, x2)`` split after the first ``split`` channels,

    forward:  ``y1 = x1 + F(x2)``,  ``s = clamp·(2σ(H(y1)) − 1)``,  ``y2 = x2 ⊙ exp(s) + G(y1)``;
    reverse:  ``s = clamp·(2σ(H(y1)) − 1)``,  ``x2 = (y2 − G(y1)) ⊙ exp(−s)``,  ``x1 = y1 − F(x2)``.

    The bounded scale ``s ∈ (−clamp, clamp)`` keeps both directions well conditioned.
    """

    def __init__(self, channels: int, split: int, features: int = 64, clamp: float = 1.0):
        super().__init__()
        self.split, self.clamp = split, clamp
        self.F = ResidualSubnet(channels - split, split, features)
        self.G = ResidualSubnet(split, channels - split, features)
        self.H = ResidualSubnet(split, channels - split, features)

    def scale(self, y1: torch.Tensor) -> torch.Tensor:
        return self.clamp * (2 * torch.sigmoid(self.H(y1)) - 1)

    def forward(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        first, second = x[:, : self.split], x[:, self.split :]
        if not reverse:
            y1 = first + self.F(second)
            return torch.cat([y1, second * torch.exp(self.scale(y1)) + self.G(y1)], dim=1)
        x2 = (second - self.G(first)) * torch.exp(-self.scale(first))
        return torch.cat([first - self.F(x2), x2], dim=1)


class InvDN(nn.Module):
    """The invertible denoising network.

    Args:
        channels: image channels (3: RGB); also the size of the low-resolution split.
        blocks: coupling blocks after each Haar down-sampling (official: ``[8, 8]``: two levels, ×4 down).
        features: width of the coupling subnets (official: 64).
        clamp: bound of the coupling's log-scale (official: 1).
    """

    def __init__(self, channels: int = 3, blocks: Sequence[int] = (8, 8), features: int = 64, clamp: float = 1.0):
        super().__init__()
        check_range("task.net.channels", channels, 1, whole=True)
        check_range("task.net.features", features, 1, whole=True)
        check_range("task.net.clamp", clamp, 0, open_low=True)
        if not blocks or any(not isinstance(count, int) or count < 0 for count in blocks):
            raise ValueError(f"blocks={list(blocks)!r}: give a list of block counts ≥ 0, one per Haar level")
        self.config = {"channels": channels, "blocks": list(blocks), "features": features, "clamp": clamp}
        self.channels = channels
        layers: list[nn.Module] = []
        width = channels
        for count in blocks:
            layers.append(HaarDownsampling(width))
            width *= HAAR_BANDS
            layers += [AffineCoupling(width, channels, features, clamp) for _ in range(count)]
        self.layers = nn.ModuleList(layers)
        self.size_multiple = 2 ** len(blocks)

    def forward(self, x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
        """Forward: B×C×H×W (H, W multiples of :attr:`size_multiple`) → B×4^L·C×H/2^L×W/2^L, the first C channels
        the low-resolution clean estimate. ``reverse``: the exact inverse."""
        for layer in reversed(self.layers) if reverse else self.layers:
            x = layer(x, reverse)
        return x

    def split(self, encoded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(low-resolution image, latent) of a forward output."""
        return encoded[:, : self.channels], encoded[:, self.channels :]

    def restore(self, low: torch.Tensor, latent_shape: torch.Size, gaussian_scale: float) -> torch.Tensor:
        """The reverse pass from ``low`` with the latent replaced by ``z ~ N(0, gaussian_scale² I)``."""
        z = gaussian_scale * torch.randn(latent_shape, device=low.device, dtype=low.dtype)
        return self(torch.cat([low, z], dim=1), reverse=True)

    @torch.no_grad()
    def denoise(self, noisy: torch.Tensor, samples: int = 1, gaussian_scale: float = 1.0, self_ensemble: bool = False) -> torch.Tensor:
        """The denoised B×C×H×W image of any size (reflection-padded to :attr:`size_multiple`, cropped back).

        ``samples`` > 1 averages the reverse passes of that many latent draws (the official ``MC_test``, a
        Monte-Carlo self-ensemble); ``self_ensemble`` averages over the 8 flips/transpositions (``forward_x8``),
        ``samples`` draws each.
        """
        height, width = noisy.shape[-2:]
        pad_h = padded_size(height, self.size_multiple, self.size_multiple) - height
        pad_w = padded_size(width, self.size_multiple, self.size_multiple) - width
        padded = reflect_pad(noisy, pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
        transforms = range(8) if self_ensemble else (0,)
        total = torch.zeros_like(padded)
        for k in transforms:
            low, latent = self.split(self(dihedral(padded, k)))
            for _ in range(samples):
                total += dihedral_inverse(self.restore(low, latent.shape, gaussian_scale), k)
        return Crop(pad_h // 2, pad_w // 2, height, width)(total / (len(transforms) * samples))
