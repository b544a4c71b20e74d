"""A generator that is one learned number per output channel: a global mixing weight.

Double-DIP's separation of two mixtures (Gandelsman, Shocher, Irani, CVPR 2019, Sec. 4.2) learns each mixture's
weight ``α`` with a further DIP whose output map is read at its centre pixel only. A scalar parameter is the same
unknown without the network: here ``α = low + (high − low)·sigmoid(θ)``, returned as a constant map of the
input's size so that everything the module does to a layer (crop, augmentation, averaging, resizing) applies.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ddip.errors import DdipError


class Scalar(nn.Module):
    """``out_channels`` learned numbers in (``low``, ``high``), starting at ``init``, each a constant map.

    ``forward(z)`` ignores the values of its input ``z`` (N×C×H×W) and returns N×out_channels×H×W.
    """

    def __init__(self, in_channels: int, out_channels: int, low: float = 0.0, high: float = 1.0, init: float = 0.5):
        super().__init__()
        if not low < init < high:
            raise DdipError(f"a learned scalar needs low < init < high; got {low}, {init}, {high}")
        self.low, self.high = float(low), float(high)
        fraction = (init - low) / (high - low)
        self.logit = nn.Parameter(torch.full((out_channels,), math.log(fraction / (1.0 - fraction))))

    @property
    def value(self) -> torch.Tensor:
        """The numbers, one per output channel."""
        return self.low + (self.high - self.low) * torch.sigmoid(self.logit)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, _, height, width = z.shape
        return self.value.to(z.dtype)[None, :, None, None].expand(n, -1, height, width)
