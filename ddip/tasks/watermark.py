"""Double-DIP watermark removal from one image with a hint (Gandelsman, Shocher, Irani, CVPR 2019, Sec. 4.4).

Physics (Eq. 1 with the watermark's mask): inside the user's hint ``h`` (a box around the watermark, white =
watermark), ``I = m·w + (1 − m)·c``, with ``c`` the clean image, ``w`` the watermark and ``m`` its mask; outside it
``I = c``. With the effective mask ``h·m`` both read ``I = h·m·w + (1 − h·m)·c`` (:func:`composite`). Three
generators per run: the clean layer (3 channels), the watermark (3) and the mask (1), each with its own noise input;
the mask's input is not jittered (the reference's stage 2).

Schedule (the reference's 4000 + 7000 steps, as a fraction of ``steps``):

1. **Clean layer** (first ``stage1_fraction``): ``outside·ExtL1(c, I, 1 − h)``: the clean layer learns the image
   outside the hint; what it draws inside is the prior's.
2. **Decomposition**: the same term plus ``reconstruction·L1(h·m·w + (1 − h·m)·c, I)`` and ddip's
   ``sparsity·mean(h·m)`` (most of the box is no watermark).

ddip's ``flat_watermark`` makes the watermark one colour, its generator's mean over the hint (a text or logo in one
ink), so that a residual ``I − c`` is the watermark only along one colour direction a pixel.

Runs: the reference fits ``runs`` (3) independent decompositions and combines them by a pixel-wise median. Here they
are ``runs`` triples of generators of one fit (``clean_0``, ``watermark_0``, ``mask_0``, ``clean_1``, …): their own
weights and inputs, the same steps; each run's loss is independent of the others', so under Adam the fit is the
runs' separate fits side by side.

Output (``output``): ``formula``, the physics solved for the clean image with the learnt watermark and mask,
``c = (I − h·m·w) / (1 − h·m)`` (as dehazing's ``J = (I − (1 − t)·A) / t``), computed as the clean layer plus the
composite's residual divided by ``max(1 − h·m, formula_floor)`` (the formula itself wherever ``1 − h·m`` is above
the floor), per run, then their median: the input where the mask is 0, the watermark taken out where it is not; ``hint``, the median clean layer inside the hint and the input
outside it (the reference's ``_final``); ``mask``, also the input where the median mask is below ``mask_threshold``
(its ``_real_final``); ``clean``, the median clean layer everywhere. The output is chosen, without ground truth, by the
reconstruction PSNR of the medians once the decomposition has started (the reference keeps the last iterate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from ddip.baselines import opencv_inpaint
from ddip.benchmark import psnr_fit_record, timed
from ddip.errors import DdipError, check_flag, check_range, is_whole
from ddip.io import load_map
from ddip.losses import masked_l1_loss, reconstruction_loss
from ddip.metrics import psnr, quality
from ddip.synthetic import box_map
from ddip.tasks.base import GeneratorSpec, Layers, NoiseInput, Task, loss_weights, two_stage_start

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ddip.benchmark import BenchmarkCase

LAYERS = ("clean", "watermark", "mask")
OUTPUTS = ("formula", "hint", "mask", "clean")


def composite(clean: torch.Tensor, watermark: torch.Tensor, mask: torch.Tensor, hint: torch.Tensor | float = 1.0) -> torch.Tensor:
    """``I = h·m·w + (1 − h·m)·c``: Double-DIP Eq. 1 for a watermark ``w`` of mask ``m`` over the clean image ``c``,
    limited to the hint ``h`` (1 = the whole image)."""
    alpha = hint * mask
    return alpha * watermark + (1.0 - alpha) * clean


def flat_ink(watermark: torch.Tensor, weight: torch.Tensor | float = 1.0) -> torch.Tensor:
    """The watermark as one colour (a text or logo in one ink): its mean over the ``weight`` (an H×W or N×1×H×W map,
    e.g. the hint; 1 = the whole image), at every pixel."""
    weight = torch.as_tensor(weight, dtype=watermark.dtype, device=watermark.device).expand_as(watermark[:, :1])
    colour = (weight * watermark).sum(dim=(-2, -1), keepdim=True) / weight.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    return colour.expand_as(watermark)


def solved_clean(
    image: torch.Tensor, clean: torch.Tensor, watermark: torch.Tensor, mask: torch.Tensor, floor: float, hint: torch.Tensor | float = 1.0
) -> torch.Tensor:
    """The physics solved for the clean image with the learnt watermark and mask, ``c = (I − h·m·w)/(1 − h·m)`` (as
    dehazing's ``J = (I − (1 − t)·A)/t``): the clean layer plus the composite's residual divided by
    ``max(1 − h·m, floor)`` (the formula itself wherever ``1 − h·m`` is above the floor)."""
    residual = image - composite(clean, watermark, mask, hint)
    return clean + residual / (1.0 - hint * mask).clamp_min(floor)


def region_psnr(estimate: torch.Tensor, reference: torch.Tensor, region: torch.Tensor) -> float:
    """PSNR of two C×H×W (or 1×C×H×W) images over the pixels where the H×W ``region`` is 1."""
    inside = region.bool()
    estimate, reference = (x.reshape(-1, *inside.shape)[:, inside].reshape(1, 1, 1, -1) for x in (estimate, reference))
    return psnr(estimate, reference)


class Watermark(Task):
    """Removes a watermark from one image, given where it is (``data.hint`` or ``task.box``).

    Args:
        box: the hint as a box ``[x0, y0, x1, y1]`` in the input's pixels (x0 ≤ x < x1, y0 ≤ y < y1) instead of a
            ``data.hint`` map.
        runs: independent decompositions combined by a pixel-wise median (reference 3).
        stage1_fraction: share of ``steps`` in which only the clean layer is fitted, outside the hint (reference
            4000 of 11000).
        weights: loss weights ``outside`` (the clean layer outside the hint), ``reconstruction`` (the composite
            inside it; reference 1 and 0.5) and ``sparsity`` (the mask's L1 inside the hint, from stage 2 on: most of
            the box is not watermark; not in the reference, 0 = off).
        output: ``formula`` (the physics solved for the clean image), ``hint`` (the input outside the hint, the
            median clean layer inside), ``mask`` (the input also where the median mask is below ``mask_threshold``)
            or ``clean`` (the median clean layer everywhere).
        mask_threshold: of ``output=mask`` (reference 0.1).
        formula_floor: of ``output=formula``: the least ``1 − h·m`` divided by.
        input_channels, input_scale: depth and amplitude of the noise inputs (reference 2, 1/100).
        flat_watermark: the watermark is one colour: its generator's mean over the hint (a text or logo in one
            ink; then ``I − c = m·(w − c)`` holds only along one colour direction a pixel, which texture rarely
            follows). The reference's watermark is its generator's output as it is.
    """

    primary_metric = "psnr"
    truth_kinds: ClassVar[dict[str, str]] = {"clean": "image"}
    data_maps = ("hint",)

    def __init__(
        self,
        box: list[int] | None = None,
        runs: int = 3,
        stage1_fraction: float = 4 / 11,
        weights: dict | None = None,
        output: str = "hint",
        mask_threshold: float = 0.1,
        formula_floor: float = 0.2,
        input_channels: int = 2,
        input_scale: float = 0.01,
        flat_watermark: bool = False,
        **common,
    ):
        super().__init__(**common)
        self.box = check_box(box)
        check_range("task.runs", runs, 1, whole=True)
        check_range("task.stage1_fraction", stage1_fraction, 0, 1, open_high=True)
        check_range("task.mask_threshold", mask_threshold, 0, 1)
        check_range("task.formula_floor", formula_floor, 0, 1, open_low=True)
        if output not in OUTPUTS:
            raise DdipError(f"task.output={output!r} is not one of {', '.join(OUTPUTS)}")
        self.runs, self.stage1_fraction, self.output, self.mask_threshold = runs, stage1_fraction, output, mask_threshold
        check_flag("task.flat_watermark", flat_watermark)
        self.formula_floor, self.flat_watermark = formula_floor, flat_watermark
        self.weights = loss_weights({"outside": 1.0, "reconstruction": 0.5, "sparsity": 0.0}, weights)
        self.inputs, self.generators = {}, {}
        for run in range(runs):
            for layer, channels in zip(LAYERS, (3, 3, 1)):
                self.inputs[f"{layer}_{run}"] = NoiseInput(input_channels, input_scale, perturb=layer != "mask")
                self.generators[f"{layer}_{run}"] = GeneratorSpec(channels, f"{layer}_{run}")

    # --- the hint -------------------------------------------------------------------------------------------
    def own_maps(self, size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The hint from ``task.box``, which must lie inside the image."""
        if self.box is None:
            return {}
        _, _, x1, y1 = self.box
        if x1 > size[1] or y1 > size[0]:
            raise DdipError(f"task.box={list(self.box)} reaches beyond the {size[1]}×{size[0]} image (x1 ≤ {size[1]}, y1 ≤ {size[0]})")
        return {"hint": box_map(size, self.box)}

    # --- schedule -------------------------------------------------------------------------------------------
    def stage1_steps(self, steps: int) -> int:
        return round(self.stage1_fraction * steps)

    def stage_start(self, step: int, steps: int) -> int:
        return two_stage_start(step, self.stage1_steps(steps))

    def selectable_from(self, steps: int) -> int:
        """After at least one step of the decomposition: before it the watermark and the mask are untrained."""
        return self.stage1_steps(steps) + 1

    # --- physics and losses ---------------------------------------------------------------------------------
    def run_layers(self, layers: Layers, run: int, hint: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(clean, watermark, mask) of one run; with :attr:`flat_watermark` the watermark is its generator's mean
        colour over the ``hint`` (a 1×1×H×W or H×W map; 1 = the whole image)."""
        clean, watermark, mask = (layers[f"{layer}_{run}"] for layer in LAYERS)
        return clean, flat_ink(watermark, hint) if self.flat_watermark else watermark, mask

    def medians(self, layers: Layers) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pixel-wise medians over the runs of the clean layer, the watermark ``m·w`` and the mask (the
        reference's combination of its restarts)."""
        runs = [self.run_layers(layers, run) for run in range(self.runs)]
        clean = torch.stack([c for c, _, _ in runs]).median(dim=0).values
        inked = torch.stack([m * w for _, w, m in runs]).median(dim=0).values
        mask = torch.stack([m for _, _, m in runs]).median(dim=0).values
        return clean, inked, mask

    def reconstruction(self, layers: Layers, hint: torch.Tensor | float = 1.0) -> torch.Tensor:
        """The median over the runs of their composites (:func:`composite`) with the ``hint`` (1×1×H×W or H×W)."""
        return torch.stack([composite(*self.run_layers(layers, run, hint), hint) for run in range(self.runs)]).median(dim=0).values

    def compose(self, layers: Layers) -> torch.Tensor:
        """The median over the runs of ``m·w + (1 − m)·c`` over the whole image (the hint acts in the loss)."""
        return self.reconstruction(layers)

    def loss_terms(self, layers, target, maps, step, steps):
        """Mean over the runs of ``outside·ExtL1(c, I, 1 − h)`` and, in stage 2, ``reconstruction·L1(composite, I)``
        and ``sparsity·mean(h·m)`` (a mean over the image, as the reconstruction's: a pixel's mask is worth its
        cost where it lowers the composite's error by more than ``sparsity / reconstruction``)."""
        hint = maps["hint"]  # 1×1×H×W
        runs = [self.run_layers(layers, run, hint) for run in range(self.runs)]
        terms = {"outside": sum(masked_l1_loss(clean, target, 1.0 - hint) for clean, _, _ in runs)}
        if step >= self.stage1_steps(steps):
            terms["reconstruction"] = sum(reconstruction_loss(composite(*layers_of_run, hint), target) for layers_of_run in runs)
            if self.weights["sparsity"]:
                terms["sparsity"] = sum((hint * mask).mean() for _, _, mask in runs)
        return {name: self.weights[name] * value / self.runs for name, value in terms.items()}

    # --- output and scores ----------------------------------------------------------------------------------
    def cleaned(self, layers: Layers, image: torch.Tensor, hint: torch.Tensor | None, output: str | None = None) -> torch.Tensor:
        """The watermark-free image (1×C×H×W in [0, 1]) by the rule ``output`` (default :attr:`output`), given the
        H×W ``hint`` (``None``: the whole image)."""
        output = output or self.output
        if output == "formula":
            region = 1.0 if hint is None else hint
            solved = [solved_clean(image, *self.run_layers(layers, run, region), self.formula_floor, region) for run in range(self.runs)]
            return torch.stack(solved).median(dim=0).values.clamp(0.0, 1.0)
        clean, _, mask = self.medians(layers)
        clean = clean.clamp(0.0, 1.0)
        if output == "clean" or hint is None:
            return clean
        keep = 1.0 - hint
        if output == "mask":
            keep = torch.maximum(keep, (hint * mask[:, 0] < self.mask_threshold).float())
        return keep * image + (1.0 - keep) * clean

    def selection_score(self, layers: Layers, image: torch.Tensor, maps: dict[str, torch.Tensor]) -> float:
        """PSNR of the reconstruction (:meth:`reconstruction` with the hint) against the image."""
        return psnr(self.reconstruction(layers, maps["hint"]).clamp(0.0, 1.0), image)

    def evaluation_metrics(self, layers, truth, image, maps):
        return {"psnr": psnr(self.cleaned(layers, image, maps["hint"]), truth["clean"])} if "clean" in truth else {}

    def panel(self, layers: Layers) -> dict[str, torch.Tensor]:
        clean, inked, mask = self.medians(layers)
        return {"reconstruction": self.compose(layers)[0], "clean": clean[0], "watermark": inked[0], "mask": mask[0]}

    def result(self, chosen, final, image, truth, maps):
        return self.finalize(chosen, final, image, truth, maps["hint"])

    def finalize(self, chosen, final, image, truth, hint: torch.Tensor | None = None):
        """``clean.png`` (:meth:`cleaned`), ``watermark.png`` (the median ``m·w`` inside the hint) and ``mask.png``
        (the median mask inside it); with ``data.truth.clean``, PSNR/SSIM of the chosen and the final output and of the
        input, over the image and (``psnr_hint_*``) over the hint."""
        region = torch.ones(image.shape[-2:]) if hint is None else hint
        _, inked, mask = self.medians(chosen)
        images = {"clean": self.cleaned(chosen, image, hint)[0], "watermark": (region * inked[0]).clamp(0.0, 1.0), "mask": region * mask[0]}
        metrics = {"output_rule": self.output, "hint_fraction": float(region.mean())}
        if "clean" in truth:
            for end, layers in (("chosen", chosen), ("final", final)):
                output = self.cleaned(layers, image, hint)
                metrics |= quality(output, truth["clean"], end) | {f"psnr_hint_{end}": region_psnr(output, truth["clean"], region)}
            for rule in OUTPUTS:  # every rule's output, to compare them on one fit
                output = self.cleaned(chosen, image, hint, rule)
                metrics |= {f"psnr_chosen_{rule}": psnr(output, truth["clean"]), f"psnr_hint_chosen_{rule}": region_psnr(output, truth["clean"], region)}
            metrics |= quality(image, truth["clean"], "input") | {"psnr_hint_input": region_psnr(image, truth["clean"], region)}
        return images, metrics

    @classmethod
    def fit_record(cls, case: BenchmarkCase, cfg: DictConfig, metrics: dict) -> dict:
        """The PSNR/SSIM of the fit (:func:`ddip.benchmark.psnr_fit_record`) and its PSNR inside the hint (``psnr_hint``)."""
        return psnr_fit_record(case, "ddip (Double-DIP watermark)", metrics, psnr_hint=metrics["psnr_hint_chosen"])

    @classmethod
    def baseline_records(cls, case: BenchmarkCase) -> list[dict]:
        """The watermarked input, and OpenCV's Telea inpainting of the hint box (:func:`ddip.baselines.opencv_inpaint`:
        what a user without a better tool would do with the box); PSNR over the image and inside the hint."""
        image, clean, hint = case.image(), case.truth_image("clean"), load_map(case.path("hint"))
        filled, seconds = timed(opencv_inpaint, image, 1.0 - hint, "telea")
        return [
            case.record("watermarked input", **quality(image, clean), psnr_hint=region_psnr(image, clean, hint)),
            case.record("OpenCV Telea (hint box)", **quality(filled, clean), psnr_hint=region_psnr(filled, clean, hint), seconds=seconds),
        ]


def check_box(box) -> tuple[int, int, int, int] | None:
    """``task.box`` as (x0, y0, x1, y1), or a one-line :class:`DdipError` unless it is four whole numbers with
    0 ≤ x0 < x1 and 0 ≤ y0 < y1 (``None``: no box)."""
    if box is None:
        return None
    if isinstance(box, (str, bytes)) or not hasattr(box, "__len__") or len(box) != 4 or not all(is_whole(v) for v in box):
        raise DdipError(f"task.box={box!r} must be four whole numbers [x0,y0,x1,y1] (pixels)")
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        raise DdipError(f"task.box={list(box)} must have 0 ≤ x0 < x1 and 0 ≤ y0 < y1")
    return x0, y0, x1, y1
