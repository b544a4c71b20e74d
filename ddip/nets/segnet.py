"""SegNet (Badrinarayanan et al., TPAMI 2017): a VGG-like encoder whose max-pool indices drive the decoder."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

from ddip.nets.blocks import OUTPUT_ACTIVATIONS, check_choice, check_input_size, check_positive, output_head

MAX_WIDTH_FACTOR = 8


def _conv_bn_relu(in_channels: int, out_channels: int, bn_momentum: float) -> list[nn.Module]:
    """Zero-padded Conv3×3 → BatchNorm(momentum) → ReLU, as a list of layers."""
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels, momentum=bn_momentum),
        nn.ReLU(),
    ]


def _conv_stack(widths: Sequence[int], bn_momentum: float) -> nn.Sequential:
    """Chain of Conv3×3 → BN → ReLU going through ``widths`` (one conv per consecutive pair)."""
    layers = [_conv_bn_relu(a, b, bn_momentum) for a, b in pairwise(widths)]
    return nn.Sequential(*[layer for block in layers for layer in block])


class SegNet(nn.Module):
    """Encoder-decoder: stage s has width ``width * min(2**s, 8)``, pools by 2 and is unpooled with its indices.

    The shallowest decoder stage has ``convs_per_stage[0] - 1`` conv blocks: the output head, a plain
    Conv3×3 (plus sigmoid when requested), is its last convolution, as in the reference network.
    Input H and W must be multiples of :attr:`size_multiple` (= :attr:`min_size`).
    """

    stackable = True  # forward mixes channels only through its layers: see ddip.nets.grouped

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int = 64,
        convs_per_stage: Sequence[int] = (2, 2, 3, 3, 3),
        bn_momentum: float = 0.5,
        output_activation: str = "sigmoid",
    ) -> None:
        super().__init__()
        if len(convs_per_stage) == 0:
            raise ValueError("convs_per_stage must list at least one stage")
        check_positive("in_channels, out_channels and width", [in_channels, out_channels, width])
        check_positive("convs_per_stage", convs_per_stage)
        check_choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
        num_stages = len(convs_per_stage)
        self.size_multiple = 2**num_stages
        self.min_size = 2**num_stages
        widths = [width * min(2**stage, MAX_WIDTH_FACTOR) for stage in range(num_stages)]
        self.encoder = nn.ModuleList(
            _conv_stack([stage_in, *[stage_width] * convs], bn_momentum)
            for stage_in, stage_width, convs in zip([in_channels, *widths[:-1]], widths, convs_per_stage)
        )
        self.decoder = nn.ModuleList(
            _conv_stack([*[stage_width] * convs, stage_out], bn_momentum)
            for stage_width, stage_out, convs in zip(widths[1:], widths[:-1], convs_per_stage[1:])
        )
        self.decoder.insert(0, _conv_stack([width] * convs_per_stage[0], bn_momentum))
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.head = output_head(nn.Conv2d(width, out_channels, 3, padding=1), output_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map an N×in_channels×H×W tensor to N×out_channels×H×W."""
        check_input_size(x, self.size_multiple, self.min_size)
        pooled = []
        for stage in self.encoder:
            features = stage(x)
            x, indices = self.pool(features)
            pooled.append((indices, features.shape))
        for stage, (indices, unpooled_shape) in zip(reversed(self.decoder), reversed(pooled)):
            x = stage(self.unpool(x, indices, output_size=unpooled_shape[-2:]))
        return self.head(x)
