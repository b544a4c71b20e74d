"""DIP inpainting (Ulyanov, Vedaldi, Lempitsky, CVPR 2018, Sec. 4, "Inpainting", Eq. 6):
``min_θ ‖(f_θ(z) − x₀) ⊙ m‖²``, with ``m`` the binary mask of the known pixels.

One generator maps a fixed noise input to the image and is fitted on the known pixels only; what it draws in the
holes is the prior's. The mask is data (``data.mask``, white = known; :attr:`Inpainting.data_maps`), so it is
padded and augmented with the image. The output is chosen by the fit of the known pixels (the DIP notebook takes
the last iterate, which that fit favours), and by default the known pixels of the input are put back into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F

from ddip.baselines import opencv_inpaint
from ddip.benchmark import psnr_fit_record, timed
from ddip.errors import check_flag
from ddip.io import load_map
from ddip.metrics import psnr, quality
from ddip.tasks.base import GeneratorSpec, Layers, NoiseInput, Task

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ddip.benchmark import BenchmarkCase


class Inpainting(Task):
    """Fills the unknown pixels of one image with a deep image prior.

    Args:
        input_channels, input_scale: depth and amplitude of the noise input (DIP notebook: 32, 1/10).
        paste_known: the output is the input on its known pixels and the generator's elsewhere (``false``: the
            generator's everywhere, as the DIP notebook).
    """

    primary_metric = "psnr"
    truth_kinds: ClassVar[dict[str, str]] = {"clean": "image"}
    data_maps = ("mask",)

    def __init__(self, input_channels: int = 32, input_scale: float = 0.1, paste_known: bool = True, **common):
        super().__init__(**common)
        check_flag("task.paste_known", paste_known)
        self.paste_known = paste_known
        self.inputs = {"z": NoiseInput(input_channels, input_scale)}
        self.generators = {"inpainted": GeneratorSpec(3, "z")}

    def compose(self, layers: Layers) -> torch.Tensor:
        """The identity: the image is the generator's output (the mask acts in the loss)."""
        return layers["inpainted"]

    def loss_terms(self, layers, target, maps, step, steps):
        """Eq. 6 as the notebook's ``MSE(out·m, x₀·m)``: the mean over all pixels of the known pixels' errors."""
        mask = maps["mask"]
        return {"reconstruction": F.mse_loss(self.compose(layers) * mask, target * mask)}

    def selection_score(self, layers: Layers, image: torch.Tensor, maps: dict[str, torch.Tensor]) -> float:
        """PSNR of the output against the input on the known pixels: the only pixels with an answer."""
        known = maps["mask"].expand_as(image).bool()
        output = self.compose(layers).clamp(0.0, 1.0)
        return psnr(output[known].view(1, 1, 1, -1), image[known].view(1, 1, 1, -1))

    def output(self, layers: Layers, image: torch.Tensor, known: torch.Tensor | None) -> torch.Tensor:
        """The inpainted image (1×C×H×W in [0, 1]): the generator's, with the input's known pixels when pasting."""
        drawn = self.compose(layers).clamp(0.0, 1.0)
        return drawn if known is None or not self.paste_known else known * image + (1.0 - known) * drawn

    def ground_truth_metrics(self, layers: Layers, truth: dict[str, torch.Tensor], image: torch.Tensor) -> dict[str, float]:
        return {"psnr": psnr(self.compose(layers).clamp(0.0, 1.0), truth["clean"])} if "clean" in truth else {}

    def result(self, chosen, final, image, truth, maps):
        return self.finalize(chosen, final, image, truth, maps["mask"])

    def finalize(self, chosen, final, image, truth, known: torch.Tensor | None = None):
        """``inpainted.png`` and, with ``data.truth.clean``, PSNR/SSIM of the chosen and the final output and of the input;
        ``known`` (H×W, the input's known pixels) is put back when pasting."""
        images = {"inpainted": self.output(chosen, image, known)[0]}
        metrics = {}
        if "clean" in truth:
            for end, layers in (("chosen", chosen), ("final", final)):
                metrics |= quality(self.output(layers, image, known), truth["clean"], end)
            metrics["psnr_input"] = psnr(image, truth["clean"])
        return images, metrics

    @classmethod
    def fit_record(cls, case: BenchmarkCase, cfg: DictConfig, metrics: dict) -> dict:
        """The PSNR/SSIM of the fit (:func:`ddip.benchmark.psnr_fit_record`)."""
        return psnr_fit_record(case, "ddip (DIP inpaint)", metrics)

    @classmethod
    def baseline_records(cls, case: BenchmarkCase) -> list[dict]:
        """The input (its missing pixels as given), and OpenCV's Telea and Navier–Stokes inpainting
        (:func:`ddip.baselines.opencv_inpaint`)."""
        image, clean, known = case.image(), case.truth_image("clean"), load_map(case.path("mask"))
        rows = [case.record("input (missing pixels as given)", **quality(image, clean))]
        for label, method in (("OpenCV Telea", "telea"), ("OpenCV Navier–Stokes", "ns")):
            filled, seconds = timed(opencv_inpaint, image, known, method)
            rows.append(case.record(label, **quality(filled, clean), seconds=seconds))
        return rows
