"""DIP denoising (Ulyanov, Vedaldi, Lempitsky, CVPR 2018, Sec. 4, Eq. 2): ``min_θ ‖f_θ(z) − x₀‖²``.

One generator maps a fixed noise input ``z`` (jittered every step, the reference's ``reg_noise_std``) to the
image; the physics is the identity. Fitted long enough it reproduces the noise too, so the output is chosen
without ground truth by a stopping rule (``stopping=es_wmv``, the task's default) over the exponential
average of the outputs (``module.average``, the reference's ``exp_weight = 0.99``). With a curriculum
(``scheduler=linear|cosine``) the target is a DDPM-noised copy of the noisy image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ddip.metrics import psnr, ssim
from ddip.tasks.base import GeneratorSpec, Layers, NoiseInput, Task


class Denoising(Task):
    """Single-image denoising by a deep image prior.

    Args:
        input_channels, input_scale: depth and amplitude of the noise input (reference: 32, 1/10).
    """

    generators = {"denoised": GeneratorSpec(3, "image")}

    def __init__(self, input_channels: int = 32, input_scale: float = 0.1, **common):
        super().__init__(**common)
        self.inputs = {"image": NoiseInput(input_channels, input_scale)}

    def compose(self, layers: Layers) -> torch.Tensor:
        """The identity: the generator's output is the image (Eq. 2)."""
        return layers["denoised"]

    def loss_terms(self, layers, target, maps, step, steps):
        return {"reconstruction": F.mse_loss(layers["denoised"], target)}

    def ground_truth_metrics(self, layers: Layers, truth: dict[str, torch.Tensor], image: torch.Tensor) -> dict[str, float]:
        if "clean" not in truth:
            return {}
        return {"psnr": psnr(layers["denoised"].clamp(0.0, 1.0), truth["clean"])}

    def finalize(self, chosen, final, image, truth):
        images = {"denoised": chosen["denoised"][0].clamp(0.0, 1.0)}
        metrics = {}
        if "clean" in truth:
            clean = truth["clean"]
            for end, layers in (("chosen", chosen), ("final", final)):
                output = layers["denoised"].clamp(0.0, 1.0)
                metrics |= {f"psnr_{end}": psnr(output, clean), f"ssim_{end}": ssim(output, clean)}
            metrics["psnr_input"] = psnr(image, clean)
        return images, metrics
