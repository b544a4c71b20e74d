"""Double-DIP layer separation of one mixture (Gandelsman, Shocher, Irani, CVPR 2019: the separation of two
mixed textures that opens the paper): two DIPs whose sum explains the image and whose edges do not coincide.

The physics is Eq. 1 with a constant mask ``m = ½``: ``I = (y1 + y2) / 2`` — the mixture of two images in
equal parts. (The reference writes ``I = R + T`` with layers at half intensity and doubles them for display;
``y = 2R`` is the same model with layers in the image's own range.) Loss: ``L1((y1 + y2)/2, I)`` plus
``0.01 · Loss_Excl(y1, y2)`` (Eq. 1's exclusion term). Which layer is which is arbitrary, so with ground truth
(``data.truth={layer1:…,layer2:…}``) the two outputs are scored under the better of the two assignments.
"""

from __future__ import annotations

import argparse
import itertools
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ddip.benchmark import timed
from ddip.errors import DdipError
from ddip.losses import exclusion_loss, reconstruction_loss
from ddip.metrics import psnr, ssim
from ddip.tasks.base import GeneratorSpec, Layers, NoiseInput, Task, each_image, loss_weights
from ddip.unmix import TV_WEIGHT, structure_texture

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ddip.benchmark import BenchmarkCase

LAYERS = ("layer1", "layer2")


def tv_weight(text: str) -> float:
    """A ``--tv-weight`` of ``scripts/evaluate.py``: a number above 0 (else a usage error)."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be above 0")
    return value


class Separation(Task):
    """Two images mixed in equal parts, recovered from the mixture alone.

    Args:
        input_channels, input_scale: depth and amplitude of each layer's noise input (reference: 3, 1/100).
        weights: loss weights ``reconstruction`` and ``exclusion`` (reference: 1, 0.01).
    """

    primary_metric = "psnr_layers"
    truth_kinds: ClassVar[dict[str, str]] = dict.fromkeys(LAYERS, "image")
    benchmark_metric = "psnr"
    benchmark_options: ClassVar[dict[str, dict[str, Any]]] = {
        "--tv-weight": {"type": tv_weight, "nargs": "+", "default": [TV_WEIGHT], "help": "one mixture's separation: the structure–texture split's TV weights"}
    }
    fit_label = "ddip (Double-DIP separation)"

    def __init__(self, input_channels: int = 3, input_scale: float = 0.01, weights: dict | None = None, **common):
        super().__init__(**common)
        self.inputs = {f"z_{name}": NoiseInput(input_channels, input_scale) for name in LAYERS}
        self.generators = {name: GeneratorSpec(3, f"z_{name}") for name in LAYERS}
        self.weights = loss_weights({"reconstruction": 1.0, "exclusion": 0.01}, weights)

    def check_truth(self, names: set[str]) -> None:
        """Both true layers or neither: the outputs are matched to the pair."""
        if len(names & set(LAYERS)) == 1:
            raise DdipError("data.truth gives one layer: give both, data.truth={layer1:a.png,layer2:b.png}")

    def compose(self, layers: Layers) -> torch.Tensor:
        """``I = (y1 + y2) / 2`` (Eq. 1 with ``m = ½``)."""
        return (layers["layer1"] + layers["layer2"]) / 2

    def decision(self, layers: Layers) -> torch.Tensor:
        """Both layers: how the mixture is split (``stopping=settled`` ends the fit once they stop moving)."""
        return torch.cat([layers[name] for name in LAYERS], dim=1)

    def loss_terms(self, layers, target, maps, step, steps):
        return {
            "reconstruction": self.weights["reconstruction"] * reconstruction_loss(self.compose(layers), target),
            "exclusion": self.weights["exclusion"] * exclusion_loss(layers["layer1"], layers["layer2"]),
        }

    @staticmethod
    def matched(layers: Layers, truth: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[float], bool]:
        """The outputs (clamped) in the order of the true layers that fits them better, their PSNRs against
        those layers, and whether that order swaps the outputs."""
        outputs = [layers[name].clamp(0.0, 1.0) for name in LAYERS]
        truths = [truth[name] for name in LAYERS]
        straight = [psnr(o, t) for o, t in zip(outputs, truths)]
        crossed = [psnr(o, t) for o, t in zip(outputs[::-1], truths)]
        if sum(crossed) > sum(straight):
            return outputs[::-1], crossed, True
        return outputs, straight, False

    def ground_truth_metrics(self, layers: Layers, truth: dict[str, torch.Tensor], image: torch.Tensor) -> dict[str, float]:
        if not all(name in truth for name in LAYERS):
            return {}
        _, psnrs, _ = self.matched(layers, truth)
        return {"psnr_layers": sum(psnrs) / len(LAYERS)}

    def finalize(self, chosen, final, image, truth):
        images = {name: chosen[name][0].clamp(0.0, 1.0) for name in LAYERS}
        images |= each_image("reconstruction", self.compose(chosen)[0].clamp(0.0, 1.0))
        return images, self.layer_metrics(chosen, final, image, truth)

    def layer_metrics(self, chosen: Layers, final: Layers, image: torch.Tensor, truth: dict[str, torch.Tensor]) -> dict:
        """With ground-truth layers: each layer's PSNR/SSIM for the chosen and the final iterate under the better
        assignment, their mean ``psnr_layers_*``, whether the outputs were swapped, and ``psnr_layers_input``: the
        input taken as the layers (one mixture as both; two mixtures each as one, the better way round)."""
        metrics: dict = {}
        if all(name in truth for name in LAYERS):
            for end, layers in (("chosen", chosen), ("final", final)):
                outputs, psnrs, swapped = self.matched(layers, truth)
                for output, value, name in zip(outputs, psnrs, LAYERS):
                    metrics |= {f"psnr_{name}_{end}": value, f"ssim_{name}_{end}": ssim(output, truth[name])}
                metrics[f"psnr_layers_{end}"] = sum(psnrs) / len(LAYERS)
                metrics[f"swapped_{end}"] = swapped
            given = dict(zip(LAYERS, itertools.cycle(part[None] for part in image.split(3))))
            metrics["psnr_layers_input"] = sum(self.matched(given, truth)[1]) / len(LAYERS)
        return metrics

    @classmethod
    def fit_record(cls, case: BenchmarkCase, cfg: DictConfig, metrics: dict) -> dict:
        """The mean PSNR/SSIM of the fit's layers (better assignment) for the chosen output, the final one and the
        oracle, and the timings."""
        return case.record(
            case.method(cls.fit_label),
            psnr=metrics["psnr_layers_chosen"],
            ssim=(metrics["ssim_layer1_chosen"] + metrics["ssim_layer2_chosen"]) / 2,
            chosen_step=metrics["chosen_step"],
            psnr_final=metrics["psnr_layers_final"],
            oracle_psnr=metrics["oracle_psnr_layers"],
            oracle_step=metrics["oracle_psnr_layers_step"],
            seconds=metrics["wall_seconds"],
            seconds_per_step=metrics["seconds_per_step"],
            steps=metrics["steps"],
        )

    @classmethod
    def baseline_records(cls, case: BenchmarkCase) -> list[dict]:
        """The mixture taken as each layer; the mixture doubled about its mean colour ``μ`` with ``μ`` as the other
        layer (``2I − μ`` and ``μ`` sum to ``2I`` as the layers do); the structure–texture split
        (:func:`ddip.unmix.structure_texture`) at each of the ``tv_weight`` option's weights."""
        mixture = case.image()
        mean = mixture.mean(dim=(1, 2), keepdim=True).expand_as(mixture)
        rows = [cls.layers_record(case, "mixture as each layer", [mixture, mixture])[0]]
        rows.append(cls.layers_record(case, "mixture doubled about its mean, and the mean", [2 * mixture - mean, mean])[0])
        for weight in case.options.get("tv_weight", [TV_WEIGHT]):
            layers, seconds = timed(structure_texture, mixture, weight)
            row, _ = cls.layers_record(case, f"TV structure–texture (weight {weight:g})", list(layers))
            rows.append(row | {"seconds": seconds})
        return rows

    @classmethod
    def layers_record(cls, case: BenchmarkCase, label: str, estimates: list[torch.Tensor]) -> tuple[dict, bool]:
        """The record of two estimated layers (C×H×W): their mean PSNR/SSIM against the case's under the better
        assignment (:meth:`matched`), and whether that assignment swaps them."""
        truth = {name: case.truth_image(name) for name in LAYERS}
        outputs, psnrs, swapped = cls.matched(dict(zip(LAYERS, (estimate[None] for estimate in estimates))), truth)
        quality = {"psnr": sum(psnrs) / 2, "ssim": sum(ssim(output, truth[name]) for output, name in zip(outputs, LAYERS)) / 2}
        return case.record(label, **quality), swapped
