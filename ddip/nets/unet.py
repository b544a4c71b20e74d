"""The Deep Image Prior "skip" hourglass (Ulyanov et al., CVPR 2018), as used by Double-DIP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ddip.nets.blocks import (
    OUTPUT_ACTIVATIONS,
    check_choice,
    check_input_size,
    check_non_negative,
    check_odd_kernel,
    check_positive,
    conv_bn_act,
    output_head,
    reflect_conv,
)
from ddip.nets.grouped import ChannelConcat

UPSAMPLE_MODES = ("bilinear", "nearest")


class _SkipLevel(nn.Module):
    """One level of the hourglass: a downsampled deeper branch, an optional skip branch, and their fusion."""

    def __init__(self, deeper: nn.Sequential, skip: nn.Sequential | None, fuse: nn.Sequential) -> None:
        super().__init__()
        self.deeper = deeper
        self.skip = skip
        self.fuse = fuse
        self.concat = ChannelConcat()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate skip and deeper features along channels (skip first), then fuse them."""
        features = self.deeper(x)
        if self.skip is not None:
            features = self.concat([self.skip(x), features])
        return self.fuse(features)


class SkipUNet(nn.Module):
    """Encoder-decoder with per-level skip connections; level i halves the resolution and restores it.

    Input H and W must be multiples of :attr:`size_multiple` and at least :attr:`min_size`.
    """

    stackable = True  # forward mixes channels only through its layers: see ddip.nets.grouped

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (128,) * 5,
        up_channels: Sequence[int] | None = None,
        skip_channels: Sequence[int] = (4,) * 5,
        kernel_size: int = 3,
        skip_kernel_size: int = 1,
        upsample: str = "bilinear",
        need_1x1_up: bool = True,
        output_activation: str = "sigmoid",
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        up_channels = channels if up_channels is None else up_channels
        _check_arguments(
            in_channels,
            out_channels,
            channels,
            up_channels,
            skip_channels,
            kernel_size,
            skip_kernel_size,
            upsample,
            output_activation,
        )
        self.negative_slope = negative_slope
        self.kernel_size = kernel_size
        self.skip_kernel_size = skip_kernel_size
        self.upsample = upsample
        self.need_1x1_up = need_1x1_up
        depth = len(channels)
        self.size_multiple = 2**depth
        self.min_size = _min_input_size(kernel_size, skip_kernel_size, skip_channels)
        self.body = self._build_level(0, in_channels, list(channels), list(up_channels), list(skip_channels))
        self.head = output_head(reflect_conv(up_channels[0], out_channels, 1), output_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map an N×in_channels×H×W tensor to N×out_channels×H×W."""
        check_input_size(x, self.size_multiple, self.min_size)
        return self.head(self.body(x))

    def _activation(self) -> nn.LeakyReLU:
        """A fresh LeakyReLU with the configured negative slope."""
        return nn.LeakyReLU(self.negative_slope)

    def _upsampler(self) -> nn.Upsample:
        """×2 upsampling: bilinear with aligned corners, or nearest neighbour."""
        if self.upsample == "bilinear":
            return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        return nn.Upsample(scale_factor=2, mode="nearest")

    def _build_level(
        self, level: int, level_in: int, channels: list[int], up_channels: list[int], skip_channels: list[int]
    ) -> _SkipLevel:
        """Build level ``level`` (taking ``level_in`` channels) and, recursively, every deeper level."""
        width, k = channels[level], self.kernel_size
        deeper = nn.Sequential(
            *conv_bn_act(level_in, width, k, self._activation(), stride=2),
            *conv_bn_act(width, width, k, self._activation()),
        )
        is_deepest = level == len(channels) - 1
        if not is_deepest:
            deeper.append(self._build_level(level + 1, width, channels, up_channels, skip_channels))
        deeper.append(self._upsampler())
        skip_width = skip_channels[level]
        skip = None
        if skip_width > 0:
            skip = nn.Sequential(*conv_bn_act(level_in, skip_width, self.skip_kernel_size, self._activation()))
        fused_width = skip_width + (width if is_deepest else up_channels[level + 1])
        return _SkipLevel(deeper, skip, self._fusion(fused_width, up_channels[level]))

    def _fusion(self, fused_width: int, out_width: int) -> nn.Sequential:
        """BN over the concatenation → conv k → BN → act, then optionally conv 1×1 → BN → act."""
        fuse = nn.Sequential(
            nn.BatchNorm2d(fused_width),
            *conv_bn_act(fused_width, out_width, self.kernel_size, self._activation()),
        )
        if self.need_1x1_up:
            fuse.extend(conv_bn_act(out_width, out_width, 1, self._activation()))
        return fuse


def _min_input_size(kernel_size: int, skip_kernel_size: int, skip_channels: Sequence[int]) -> int:
    """Smallest multiple of 2**depth for which every reflection pad is smaller than the map it pads.

    Level i's skip conv pads a map of size H / 2**i; the deepest down conv pads one of size H / 2**depth.
    """
    depth = len(skip_channels)
    required = [2**depth * ((kernel_size - 1) // 2 + 1)]
    required += [2**level * ((skip_kernel_size - 1) // 2 + 1) for level, skip in enumerate(skip_channels) if skip]
    size_multiple = 2**depth
    return -(-max(required) // size_multiple) * size_multiple


def _check_arguments(
    in_channels: int,
    out_channels: int,
    channels: Sequence[int],
    up_channels: Sequence[int],
    skip_channels: Sequence[int],
    kernel_size: int,
    skip_kernel_size: int,
    upsample: str,
    output_activation: str,
) -> None:
    """Raise ValueError with a one-line message for any inconsistent SkipUNet argument."""
    if len(channels) == 0:
        raise ValueError("channels must list at least one level width")
    if len(up_channels) != len(channels) or len(skip_channels) != len(channels):
        raise ValueError(
            f"channels, up_channels and skip_channels must have the same length, "
            f"got {len(channels)}, {len(up_channels)} and {len(skip_channels)}"
        )
    check_positive("in_channels and out_channels", [in_channels, out_channels])
    check_positive("channels", channels)
    check_positive("up_channels", up_channels)
    check_non_negative("skip_channels", skip_channels)
    check_odd_kernel("kernel_size", kernel_size)
    check_odd_kernel("skip_kernel_size", skip_kernel_size)
    check_choice("upsample", upsample, UPSAMPLE_MODES)
    check_choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
