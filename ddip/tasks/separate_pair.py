"""Double-DIP separation of two mixtures of the same two layers (Gandelsman, Shocher, Irani, CVPR 2019, Sec. 4.2,
transparent layers, e.g. a reflection through a window seen twice): the mixing weights are unknown too,

    I_k = α_k·R + (1 − α_k)·T,    k = 1, 2,

with one DIP per layer (R = ``layer1``, T = ``layer2``) and one learned number per mixture (``alphas``: two
scalars, :class:`ddip.nets.scalar.Scalar`, where the reference reads each off the centre pixel of a further DIP).
Loss (the reference's): ``Σ_k MSE(α_k·R + (1 − α_k)·T, I_k) + 0.1·Loss_Excl(R, T)``, plus ``0.5·Σ_k (α_k − ½)²``
over the first seventh of the run (its 1000 of 7000 steps), which holds the weights near the middle while the
layers take shape. The two mixtures come as ``data.images=[i1.png,i2.png]``, stacked into one 6-channel image.
Which layer is which is arbitrary: with ground truth (``data.truth={layer1:…,layer2:…}``) the outputs are scored under the better
assignment, as in :class:`ddip.tasks.separate.Separation`.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ddip.benchmark import timed
from ddip.errors import DdipError, check_range
from ddip.io import load_image
from ddip.losses import exclusion_loss
from ddip.nets.scalar import Scalar
from ddip.tasks.base import GeneratorSpec, Layers, loss_weights
from ddip.tasks.separate import Separation
from ddip.unmix import ica_unmix

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ddip.benchmark import BenchmarkCase


class PairSeparation(Separation):
    """Two layers and their two mixing weights, recovered from two mixtures.

    Args:
        input_channels, input_scale: depth and amplitude of each layer's noise input (reference: 2, 1/100).
        alpha_range: the weights lie in this open interval (reference: ``0.05 + 0.9·output``, i.e. (0.05, 0.95)).
        alpha_prior_until: the fraction of the run over which ``alpha_prior`` applies (reference: 1000 of 7000).
        weights: loss weights ``reconstruction``, ``exclusion``, ``alpha_prior`` (reference: 1, 0.1, 0.5).
    """

    image_count = (2, 2)
    fit_label = "ddip (Double-DIP, two mixtures)"

    def __init__(
        self,
        input_channels: int = 2,
        input_scale: float = 0.01,
        alpha_range: tuple[float, float] = (0.05, 0.95),
        alpha_prior_until: float = 1 / 7,
        weights: dict | None = None,
        **common,
    ):
        super().__init__(input_channels, input_scale, **common)
        if isinstance(alpha_range, str) or len(alpha_range) != 2:
            raise DdipError(f"task.alpha_range={alpha_range!r}: give [low, high]")
        low, high = alpha_range
        check_range("task.alpha_range[0]", low, 0, 0.5, open_high=True)
        check_range("task.alpha_range[1]", high, 0.5, 1, open_low=True)
        check_range("task.alpha_prior_until", alpha_prior_until, 0, 1)
        self.alpha_prior_until = alpha_prior_until
        self.generators["alphas"] = GeneratorSpec(2, "z_layer1", network=partial(Scalar, low=low, high=high))
        self.weights = loss_weights({"reconstruction": 1.0, "exclusion": 0.1, "alpha_prior": 0.5}, weights)

    def compose(self, layers: Layers) -> torch.Tensor:
        """The two mixtures ``α_k·R + (1 − α_k)·T`` stacked along the channel axis (N×6×H×W)."""
        mixtures = [alpha * layers["layer1"] + (1 - alpha) * layers["layer2"] for alpha in layers["alphas"].split(1, dim=1)]
        return torch.cat(mixtures, dim=1)

    def loss_terms(self, layers, target, maps, step, steps):
        pairs = zip(self.compose(layers).split(3, dim=1), target.split(3, dim=1))
        prior = (layers["alphas"] - 0.5).square().mean(dim=(0, 2, 3)).sum()
        return {
            "reconstruction": self.weights["reconstruction"] * sum(F.mse_loss(mixture, given) for mixture, given in pairs),
            "exclusion": self.weights["exclusion"] * exclusion_loss(layers["layer1"], layers["layer2"]),
            "alpha_prior": self.weights["alpha_prior"] * float(step < self.alpha_prior_until * steps) * prior,
        }

    def panel(self, layers: Layers) -> dict[str, torch.Tensor]:
        """The two reconstructed mixtures and the two layers (the weights are numbers, in ``metrics.json``)."""
        return {name: image for name, image in super().panel(layers).items() if name != "alphas"}

    def finalize(self, chosen, final, image, truth):
        """``layer1.png``, ``layer2.png``, ``reconstruction1.png``, ``reconstruction2.png``; the learned weights of
        ``layer1`` in each mixture (``alphas``, ``alphas_final``) and, with ground truth, the weights of the true
        first layer in each mixture under the better assignment (``alphas_matched``)."""
        images, metrics = super().finalize(chosen, final, image, truth)
        metrics["alphas"], metrics["alphas_final"] = alphas(chosen), alphas(final)
        if "swapped_chosen" in metrics:
            metrics["alphas_matched"] = [1 - a for a in metrics["alphas"]] if metrics["swapped_chosen"] else metrics["alphas"]
        return images, metrics

    @classmethod
    def fit_record(cls, case: BenchmarkCase, cfg: DictConfig, metrics: dict) -> dict:
        """The separation's record (:meth:`Separation.fit_record`) with the error of the learned weights where the case
        gives the true ones (:func:`alpha_error`)."""
        return super().fit_record(case, cfg, metrics) | alpha_error(metrics["alphas"], metrics["swapped_chosen"], case.spec.get("alphas"))

    @classmethod
    def baseline_records(cls, case: BenchmarkCase) -> list[dict]:
        """The mixtures taken as the layers, and ICA of the mixtures' gradients (Farid & Adelson, CVPR 1999:
        :func:`ddip.unmix.ica_unmix`) with the error of its weights (:func:`alpha_error`)."""
        mixtures = [load_image(case.folder / path) for path in case.spec["images"]]
        rows = [cls.layers_record(case, "mixtures as the layers", mixtures)[0]]
        (first, second, weights), seconds = timed(ica_unmix, *mixtures)
        ica, swapped = cls.layers_record(case, "ICA of gradients (Farid & Adelson)", [first, second])
        return rows + [ica | {"seconds": seconds} | alpha_error(weights, swapped, case.spec.get("alphas"))]


def alpha_error(weights: list[float], swapped: bool, true: list[float] | None) -> dict[str, float]:
    """``alpha_error``: the mean absolute error of the weights of the first output layer in each mixture against the
    case's weights of its first layer (``1 − α`` when the outputs match the layers swapped); empty without them."""
    if not true:
        return {}
    matched = [1 - value for value in weights] if swapped else weights
    return {"alpha_error": sum(abs(a - b) for a, b in zip(matched, true)) / len(true)}


def alphas(layers: Layers) -> list[float]:
    """The learned weights of ``layer1`` in the two mixtures (the constant maps of the ``alphas`` generator)."""
    return [float(value) for value in layers["alphas"][0].mean(dim=(1, 2))]

