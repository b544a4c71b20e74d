"""Small building blocks shared by the backbones, and the checks on their arguments and inputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

OUTPUT_ACTIVATIONS = ("sigmoid", "none")


def reflect_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
    """A biased convolution with reflection padding of (kernel_size - 1) // 2 on every side."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=(kernel_size - 1) // 2,
        padding_mode="reflect",
    )


def conv_bn_act(
    in_channels: int, out_channels: int, kernel_size: int, activation: nn.Module, stride: int = 1
) -> list[nn.Module]:
    """Reflection-padded convolution → BatchNorm → the given activation, as a list of layers."""
    return [reflect_conv(in_channels, out_channels, kernel_size, stride), nn.BatchNorm2d(out_channels), activation]


def output_head(conv: nn.Conv2d, output_activation: str) -> nn.Sequential:
    """The final convolution, followed by a sigmoid when ``output_activation == "sigmoid"``."""
    head = nn.Sequential(conv)
    if output_activation == "sigmoid":
        head.append(nn.Sigmoid())
    return head


def check_positive(name: str, values: Sequence[int]) -> None:
    """Raise ValueError unless every value is a positive integer."""
    if any(value <= 0 for value in values):
        raise ValueError(f"{name} must be positive, got {list(values)}")


def check_non_negative(name: str, values: Sequence[int]) -> None:
    """Raise ValueError unless every value is a non-negative integer."""
    if any(value < 0 for value in values):
        raise ValueError(f"{name} must be non-negative, got {list(values)}")


def check_odd_kernel(name: str, kernel_size: int) -> None:
    """Raise ValueError unless the kernel size is a positive odd integer (so padding keeps the size)."""
    if kernel_size <= 0 or kernel_size % 2 == 0:
        raise ValueError(f"{name} must be a positive odd integer, got {kernel_size}")


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """Raise ValueError unless the value is one of the allowed choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_input_size(x: torch.Tensor, size_multiple: int, min_size: int) -> None:
    """Raise ValueError unless H and W of the N×C×H×W input are multiples of size_multiple and ≥ min_size."""
    if x.dim() != 4:
        raise ValueError(f"input must be N×C×H×W, got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    if height % size_multiple or width % size_multiple:
        raise ValueError(f"input size {height}×{width}: height and width must be multiples of {size_multiple}")
    if min(height, width) < min_size:
        raise ValueError(f"input size {height}×{width}: height and width must be at least {min_size}")
