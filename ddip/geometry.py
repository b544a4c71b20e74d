"""Image geometry on tensors: the 8 dihedral transforms (the fit's augmentation), padding to a backbone's multiple and
the crop that undoes it, and resizing. Torch only, so scripts that make cases import it without Lightning."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ddip.io import MIN_SIDE

NUM_DIHEDRAL = 8


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Transform k ∈ [0, 8) of the dihedral group on the last two axes: k % 4 quarter turns, flipped if k ≥ 4."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x


def dihedral_inverse(x: torch.Tensor, k: int) -> torch.Tensor:
    """Undo :func:`dihedral` with the same k."""
    if k % 4:
        x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


@dataclass(frozen=True)
class Crop:
    """Where the original image lies inside its padded copy."""

    top: int
    left: int
    height: int
    width: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.top : self.top + self.height, self.left : self.left + self.width]

    def scaled(self, factor: int) -> Crop:
        """The same crop of a copy ``factor`` times larger on each side (a super-resolved output)."""
        return Crop(self.top * factor, self.left * factor, self.height * factor, self.width * factor)


def padded_size(size: int, multiple: int, min_size: int) -> int:
    """The smallest size ≥ max(size, min_size) that is a multiple of ``multiple``."""
    size = max(size, min_size)
    return -(-size // multiple) * multiple


def reflect_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Reflection padding of a B×C×H×W tensor by any amount (repeated reflection where one pass can't; a side of
    one pixel, which has nothing to reflect, is repeated)."""
    if min(x.shape[-2:]) == 1:
        return F.pad(x, (left, right, top, bottom), mode="replicate")
    while top or bottom or left or right:
        height, width = x.shape[-2:]
        step = (min(left, width - 1), min(right, width - 1), min(top, height - 1), min(bottom, height - 1))
        x = F.pad(x, step, mode="reflect")
        left, right, top, bottom = left - step[0], right - step[1], top - step[2], bottom - step[3]
    return x


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A C×H×W (or B×C×H×W) image in [0, 1] resampled to ``size`` (antialiased bicubic), clipped to [0, 1]."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    batched = x if x.dim() == 4 else x[None]
    out = F.interpolate(batched, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0.0, 1.0)
    return out if x.dim() == 4 else out[0]


def fit_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """``size`` shrunk, keeping its aspect, so that its longer side is at most ``max_side`` (None: unchanged); no
    side shrinks below :data:`ddip.io.MIN_SIDE` (a 4000×8 strip fits as 384×4, not 384×1)."""
    if not max_side or max(size) <= max_side:
        return size
    scale = max_side / max(size)
    return tuple(max(min(side, MIN_SIDE), round(side * scale)) for side in size)


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int = 1) -> tuple[torch.Tensor, Crop]:
    """Reflection-pad a C×H×W tensor so H and W are multiples of ``multiple`` (and ≥ ``min_size``).

    The padding is split evenly between the two sides; the returned :class:`Crop` undoes it.
    """
    height, width = x.shape[-2:]
    pad_h = padded_size(height, multiple, min_size) - height
    pad_w = padded_size(width, multiple, min_size) - width
    top, left = pad_h // 2, pad_w // 2
    padded = reflect_pad(x[None], top, pad_h - top, left, pad_w - left)[0]
    return padded, Crop(top, left, height, width)
