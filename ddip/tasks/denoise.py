"""DIP denoising (Ulyanov, Vedaldi, Lempitsky, CVPR 2018, Sec. 4, Eq. 2): ``min_θ ‖f_θ(z) − x₀‖²``.

One generator maps a fixed noise input ``z`` (jittered every step, the reference's ``reg_noise_std``) to the
image; the physics is the identity. Fitted long enough it reproduces the noise too, so the output is chosen
without ground truth by a stopping rule (``stopping=es_wmv``, the task's default) over the exponential
average of the outputs (``module.average``, the reference's ``exp_weight = 0.99``). With a curriculum
(``scheduler=linear|cosine``) the target is a DDPM-noised copy of the noisy image.

``ensemble = K`` fits K such generators independently (each its own input and weights, each its own Eq. 2) in
the same steps and returns the mean of their outputs: the paper's "averaged over two runs" (Sec. 4, denoising:
30.43 → 31.00 dB), whose independent errors partly cancel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ddip.baselines import cbm3d, nl_means
from ddip.benchmark import psnr_fit_record, timed
from ddip.errors import DdipError
from ddip.metrics import psnr, quality, ssim
from ddip.tasks.base import GeneratorSpec, Layers, NoiseInput, Task

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ddip.benchmark import BenchmarkCase


class Denoising(Task):
    """Single-image denoising by a deep image prior.

    Args:
        input_channels, input_scale: depth and amplitude of the noise input (reference: 32, 1/10).
        ensemble: number of independent fits averaged into the output (1 = the plain DIP).
    """

    primary_metric = "psnr"
    truth_kinds: ClassVar[dict[str, str]] = {"clean": "image"}
    benchmark_facts = ("sigma",)
    benchmark_options: ClassVar[dict[str, dict[str, Any]]] = {
        "--invdn": {"metavar": "CKPT", "default": None, "help": "denoising: also InvDN with this trained checkpoint (invdn.ckpt)"}
    }

    def __init__(self, input_channels: int = 32, input_scale: float = 0.1, ensemble: int = 1, **common):
        super().__init__(**common)
        if not isinstance(ensemble, int) or isinstance(ensemble, bool) or ensemble < 1:
            raise DdipError(f"task.ensemble={ensemble}: need a whole number of fits, at least 1")
        self.inputs = {f"z_{i}": NoiseInput(input_channels, input_scale) for i in range(1, ensemble + 1)}
        self.generators = {f"fit_{i}": GeneratorSpec(3, f"z_{i}") for i in range(1, ensemble + 1)}

    def compose(self, layers: Layers) -> torch.Tensor:
        """The identity (Eq. 2): the image is the generator's output, or the mean of the ensemble's outputs."""
        return torch.stack([layers[name] for name in self.generators]).mean(0)

    def loss_terms(self, layers, target, maps, step, steps):
        """Eq. 2 for every fit, averaged: each fit's gradient is that of its own Eq. 2 (scaled by 1/K, which Adam
        ignores), so the fits stay independent."""
        losses = [F.mse_loss(layers[name], target) for name in self.generators]
        return {"reconstruction": torch.stack(losses).mean()}

    def panel(self, layers: Layers) -> dict[str, torch.Tensor]:
        fits = {name: value[0] for name, value in layers.items()} if len(self.generators) > 1 else {}
        return {"denoised": self.compose(layers)[0]} | fits

    def ground_truth_metrics(self, layers: Layers, truth: dict[str, torch.Tensor], image: torch.Tensor) -> dict[str, float]:
        if "clean" not in truth:
            return {}
        return {"psnr": psnr(self.compose(layers).clamp(0.0, 1.0), truth["clean"])}

    def finalize(self, chosen, final, image, truth):
        images = {"denoised": self.compose(chosen)[0].clamp(0.0, 1.0)}
        metrics = {}
        if "clean" in truth:
            clean = truth["clean"]
            for end, layers in (("chosen", chosen), ("final", final)):
                output = self.compose(layers).clamp(0.0, 1.0)
                metrics |= {f"psnr_{end}": psnr(output, clean), f"ssim_{end}": ssim(output, clean)}
            metrics["psnr_input"] = psnr(image, clean)
        return images, metrics

    @classmethod
    def fit_record(cls, case: BenchmarkCase, cfg: DictConfig, metrics: dict) -> dict:
        """The PSNR/SSIM of the fit (:func:`ddip.benchmark.psnr_fit_record`), named with the rule that chose its output."""
        return psnr_fit_record(case, "ddip (DIP denoise, self-chosen by " + metrics["chosen_by"] + ")", metrics)

    @classmethod
    def baseline_records(cls, case: BenchmarkCase) -> list[dict]:
        """InvDN given its checkpoint (the ``invdn`` option: :func:`invdn_record`), the noisy input, and NL-means and
        CBM3D given the true σ (:mod:`ddip.baselines`; skipped, with a line, without the ``eval`` extra)."""
        rows = [invdn_record(case, case.options["invdn"])] if case.options.get("invdn") else []
        noisy, clean = case.image(), case.truth_image("clean")
        rows.append(case.record("noisy input", **quality(noisy, clean)))
        sigma = case.spec["sigma"]
        for label, method in ((f"NL-means (true σ = {sigma})", nl_means), (f"CBM3D (true σ = {sigma})", cbm3d)):
            try:
                result, seconds = timed(method, noisy.permute(1, 2, 0).numpy().astype(np.float64), sigma / 255)
            except ImportError as error:
                print(f"skipping {label}: {error} (pip install \".[eval]\")")
                continue
            estimate = torch.from_numpy(result).permute(2, 0, 1).float()
            rows.append(case.record(label, **quality(estimate, clean), seconds=seconds))
        return rows


def invdn_record(case: BenchmarkCase, checkpoint: str) -> dict:
    """InvDN (Liu et al., CVPR 2021), the supervised baseline: ``task=invdn`` with a trained ``checkpoint`` on the case
    (one latent draw; ``seconds`` is the network's time on the image); of the case's overrides only ``threads`` applies."""
    threads = [override for override in case.overrides if override.startswith("threads=")]
    _, metrics = case.run("invdn", [f"task.weights={checkpoint}", *threads], f"{case.name}_invdn")
    return case.record(f"InvDN ({checkpoint})", psnr=metrics["psnr"], ssim=metrics["ssim"], seconds=metrics["seconds_per_image"])
