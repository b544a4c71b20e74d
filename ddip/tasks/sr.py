"""DIP super-resolution (Ulyanov, Vedaldi, Lempitsky, CVPR 2018, Sec. 4, "Super-resolution", Eq. 5):
``min_θ ‖d(f_θ(z)) − x₀‖²``, with ``d`` a downsampler by the factor ``t``.

One generator draws the image at ``t`` times the input's size; the loss compares its downsampled copy with the
input. ``d`` is DIP's fixed Lanczos-2 kernel (support of two low-resolution pixels each side, ``4t`` taps at a
half-pixel phase, stride ``t``, replicated borders), so the physics is a pure function of the generator's output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F

from ddip.benchmark import psnr_fit_record, timed
from ddip.errors import check_range
from ddip.metrics import psnr, quality
from ddip.tasks.base import GeneratorSpec, Layers, NoiseInput, Task

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ddip.benchmark import BenchmarkCase


def lanczos_taps(factor: int) -> torch.Tensor:
    """The 1-D Lanczos-2 kernel of a ×``factor`` downsampler: ``4·factor`` taps at the offsets ``(i + ½ − 2·factor) /
    factor`` (in low-resolution pixels) from the centre, weights ``sinc(x)·sinc(x/2)``, summing to 1."""
    offsets = (torch.arange(4 * factor, dtype=torch.float64) + 0.5 - 2 * factor) / factor
    taps = torch.sinc(offsets) * torch.sinc(offsets / 2)
    return (taps / taps.sum()).float()


def downsample(image: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """``d`` of Eq. 5: a B×C×(tH)×(tW) image filtered by the separable kernel ``taps`` (of :func:`lanczos_taps`) and
    sampled every ``t`` pixels, its borders replicated so that the result is B×C×H×W."""
    factor, channels = len(taps) // 4, image.shape[1]
    before = 3 * factor // 2
    padded = F.pad(image, (before, 3 * factor - before) * 2, mode="replicate")
    taps = taps.to(image)
    rows = F.conv2d(padded, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), stride=(1, factor), groups=channels)
    return F.conv2d(rows, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), stride=(factor, 1), groups=channels)


def bicubic(image: torch.Tensor, factor: int) -> torch.Tensor:
    """The classical baseline: a C×H×W (or B×C×H×W) image upscaled ``factor`` times by bicubic interpolation,
    clipped to [0, 1]."""
    batched = image if image.dim() == 4 else image[None]
    upscaled = F.interpolate(batched, scale_factor=factor, mode="bicubic", align_corners=False).clamp(0.0, 1.0)
    return upscaled if image.dim() == 4 else upscaled[0]


class SuperResolution(Task):
    """Upscales one image ``factor`` times with a deep image prior.

    Args:
        factor: the upscaling factor ``t`` (DIP: 4 and 8); outputs are ``factor`` times the input's size.
        input_channels, input_scale: depth and amplitude of the noise input (DIP notebook: 32, 1/10).
    """

    primary_metric = "psnr"
    truth_kinds: ClassVar[dict[str, str]] = {"clean": "image"}
    case_settings = ("factor",)

    def __init__(self, factor: int = 4, input_channels: int = 32, input_scale: float = 0.1, **common):
        super().__init__(**common)
        check_range("task.factor", factor, 2, whole=True)
        self.scale = factor
        self.taps = lanczos_taps(factor)
        self.inputs = {"z": NoiseInput(input_channels, input_scale)}
        self.generators = {"upscaled": GeneratorSpec(3, "z")}

    def compose(self, layers: Layers) -> torch.Tensor:
        """``d(f_θ(z))``: the high-resolution output brought down to the input's size."""
        return downsample(layers["upscaled"], self.taps)

    def loss_terms(self, layers, target, maps, step, steps):
        """Eq. 5: the mean squared error of the downsampled output against the input."""
        return {"reconstruction": F.mse_loss(self.compose(layers), target)}

    def panel(self, layers: Layers) -> dict[str, torch.Tensor]:
        return {"upscaled": layers["upscaled"][0]}

    def ground_truth_metrics(self, layers: Layers, truth: dict[str, torch.Tensor], image: torch.Tensor) -> dict[str, float]:
        return {"psnr": psnr(layers["upscaled"].clamp(0.0, 1.0), truth["clean"])} if "clean" in truth else {}

    def finalize(self, chosen, final, image, truth):
        """``upscaled.png`` and, with ``data.truth.clean`` (the high-resolution image), PSNR/SSIM of the chosen and the final
        output and of bicubic upscaling."""
        images = {"upscaled": chosen["upscaled"][0].clamp(0.0, 1.0)}
        metrics = {}
        if "clean" in truth:
            for end, layers in (("chosen", chosen), ("final", final)):
                metrics |= quality(layers["upscaled"].clamp(0.0, 1.0), truth["clean"], end)
            metrics |= quality(bicubic(image, self.scale), truth["clean"], "bicubic")
        return images, metrics

    @classmethod
    def fit_record(cls, case: BenchmarkCase, cfg: DictConfig, metrics: dict) -> dict:
        """The PSNR/SSIM of the fit (:func:`ddip.benchmark.psnr_fit_record`) at the case's factor."""
        return psnr_fit_record(case, f"ddip (DIP sr ×{case.spec['factor']})", metrics)

    @classmethod
    def baseline_records(cls, case: BenchmarkCase) -> list[dict]:
        """Bicubic upscaling (:func:`bicubic`) by the case's factor."""
        small, clean, factor = case.image(), case.truth_image("clean"), case.spec["factor"]
        upscaled, seconds = timed(bicubic, small, factor)
        return [case.record(f"bicubic ×{factor}", **quality(upscaled, clean), seconds=seconds)]
