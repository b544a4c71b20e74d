"""Double-DIP foreground/background segmentation (Gandelsman, Shocher, Irani, CVPR 2019, Sec. 4.1).

Physics (Eq. 1 with the mask of Sec. 4.1): ``I ≈ m·y_fg + (1 − m)·y_bg``. Three generators: the foreground
and background layers (3 channels, sharing one noise input, each with its own jitter) and the mask (1
channel, its own input).

Schedule (the reference recipe, scaled to ``steps``; the reference runs 2000 + 4000 steps):

1. **Hint warm-up** (first ``warmup_fraction`` of the run, only with hints): each layer reproduces the image
   where its hint is on, and ``L1(m, trimap)`` teaches the mask the trimap: 1 on the fg hint, 0 on the bg
   hint, and elsewhere 0.5 (the reference) or, with ``hints=auto`` and ``soft_trimap``, the best guess of the mask
   there (``trimap_source``): the split the dense hints are eroded from, or the saliency map.
2. **Decomposition**: ``reconstruction·Rec + exclusion·Excl(y_fg, y_bg) + binarization·ramp·1/mean|m − 0.5|``
   with ``Rec`` the layer-wise ``mean(m·|y_fg − I| + (1−m)·|y_bg − I|)`` (default) or the reference's
   ``L1(m·y_fg + (1−m)·y_bg, I)``; the layer hint terms stay for the first ``hint_fraction`` of the
   run after the warm-up, while the binarisation weight ramps up linearly over the same span.

Foreground polarity: with hints, the mask is the foreground probability by construction (the trimap is 1
on the fg hint). Without hints the foreground is the layer that covers less of the image border.

Output choice (no ground truth): the evaluated iterate with the best reconstruction PSNR once the hint
terms are off (the reference keeps the better of its end-of-stage snapshots by reconstruction PSNR). The
chosen soft mask is refined by a colour guided filter (He et al.) whose radius scales with the image, then
thresholded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torchmetrics.functional.classification import binary_jaccard_index

from ddip.baselines import grabcut
from ddip.benchmark import timed
from ddip.errors import DdipError, check_choice, check_range
from ddip.filters import guided_filter
from ddip.io import load_map, reading
from ddip.losses import binarization_loss, exclusion_loss, masked_l1_loss, reconstruction_loss
from ddip.saliency import HINT_SPLITS, confident_regions, hints_from_saliency, saliency_map
from ddip.tasks.base import GeneratorSpec, Layers, NoiseInput, Task, loss_weights, two_stage_start

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ddip.benchmark import BenchmarkCase

HINT_MODES = ("auto", "none", "files")
TRIMAP_SOURCES = ("split", "saliency")
"""What ``soft_trimap`` teaches the mask between the hints during the warm-up (:meth:`Segmentation.auto_hints`)."""


class Segmentation(Task):
    """Foreground/background segmentation with a learned mask.

    Args:
        hints: ``auto`` (saliency-derived), ``files`` (``fg_hint``/``bg_hint`` maps, any size) or ``none``.
        fg_hint, bg_hint: hint map paths for ``hints=files`` (white = hinted).
        fg_threshold, bg_threshold: thresholds of the histogram-equalised saliency for ``hints=auto``.
        hint_band: ``hints=auto`` also hints the pixels farther than this fraction of the shorter side from
            the split (0 = the reference's thresholds only).
        split: how ``hints=auto`` splits the image before ``hint_band``: ``otsu``, the saliency's Otsu split,
            ``grabcut``, GrabCut started from it (:func:`ddip.saliency.grabcut_split`), or ``box``, GrabCut started
            from the image less a margin (:func:`ddip.saliency.box_split`).
        soft_trimap: with ``hints=auto``, the warm-up mask target off the hints is ``trimap_source``'s guess
            instead of 0.5.
        trimap_source: that guess: ``split``, the split itself (with ``hint_band`` > 0; else the saliency), or
            ``saliency``, the saliency map.
        layerwise: layer-wise reconstruction (see :meth:`reconstruction`) instead of the composite's L1.
        input_channels, input_scale: depth and amplitude of the noise inputs.
        warmup_fraction: share of ``steps`` spent on the hint warm-up (reference 2000/6000).
        hint_fraction: share of ``steps`` after the warm-up during which the layer hint terms stay and the
            binarisation weight ramps up (reference 1000/6000).
        weights: loss weights ``reconstruction``, ``exclusion``, ``binarization``, ``hint``.
        refine_radius: guided-filter radius as a fraction of the image's shorter side (0 disables).
        refine_eps: guided-filter regulariser.
        threshold: binarisation threshold of the refined mask.
    """

    primary_metric = "iou"
    truth_kinds: ClassVar[dict[str, str]] = {"mask": "mask"}
    fit_label = "ddip (Double-DIP seg)"
    default_weights: ClassVar[dict[str, float]] = {"reconstruction": 0.5, "exclusion": 0.1, "binarization": 0.01, "hint": 1.0}

    generators: ClassVar[dict[str, GeneratorSpec]] = {
        "foreground": GeneratorSpec(3, "layers"),
        "background": GeneratorSpec(3, "layers"),
        "mask": GeneratorSpec(1, "mask"),
    }

    def __init__(
        self,
        hints: str = "auto",
        fg_hint: str | None = None,
        bg_hint: str | None = None,
        fg_threshold: float = 239.5,
        bg_threshold: float = 15.5,
        input_channels: int = 2,
        input_scale: float = 0.01,
        warmup_fraction: float = 1 / 3,
        hint_fraction: float = 1 / 6,
        weights: dict | None = None,
        refine_radius: float = 0.02,
        refine_eps: float = 1e-3,
        threshold: float = 0.5,
        soft_trimap: bool = True,
        trimap_source: str = "split",
        hint_band: float = 0.04,
        split: str = "box",
        layerwise: bool = True,
        **common,
    ):
        super().__init__(**common)
        check_choice("task.hints", hints, HINT_MODES)
        if hints == "files" and not (fg_hint and bg_hint):
            raise DdipError("task.hints=files needs both task.fg_hint=PATH and task.bg_hint=PATH")
        for name, value in (("warmup_fraction", warmup_fraction), ("hint_fraction", hint_fraction), ("hint_band", hint_band)):
            check_range(f"task.{name}", value, 0, 1)
        check_range("task.threshold", threshold, 0, 1, open_low=True, open_high=True)
        check_range("task.refine_radius", refine_radius, 0)
        check_range("task.refine_eps", refine_eps, 0, open_low=True)
        self.hints, self.hint_paths = hints, (fg_hint, bg_hint)
        self.thresholds = (fg_threshold, bg_threshold)
        self.inputs = {"layers": NoiseInput(input_channels, input_scale), "mask": NoiseInput(input_channels, input_scale)}
        self.warmup_fraction = warmup_fraction if hints != "none" else 0.0
        self.hint_fraction = hint_fraction if hints != "none" else 0.0
        self.weights = loss_weights(self.default_weights, weights)
        self.refine_radius, self.refine_eps, self.threshold = refine_radius, refine_eps, threshold
        self.soft_trimap, self.hint_band, self.layerwise = soft_trimap, hint_band, layerwise
        check_choice("task.split", split, HINT_SPLITS)
        check_choice("task.trimap_source", trimap_source, TRIMAP_SOURCES)
        self.trimap_source = trimap_source
        self.split = HINT_SPLITS[split]

    # --- schedule -----------------------------------------------------------------------------------
    def warmup_steps(self, steps: int) -> int:
        return round(self.warmup_fraction * steps)

    def hint_steps(self, steps: int) -> int:
        return round(self.hint_fraction * steps)

    def stage_start(self, step: int, steps: int) -> int:
        return two_stage_start(step, self.warmup_steps(steps))

    def selectable_from(self, steps: int) -> int:
        return self.warmup_steps(steps) + self.hint_steps(steps)

    # --- physics and losses ---------------------------------------------------------------------------
    def auto_hints(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Saliency hints thresholded as in the reference, widened by the confident sides of the split;
        returns (fg hint, bg hint, the guess of the mask between them: :attr:`trimap_source`'s map)."""
        saliency = saliency_map(image)
        fg, bg = hints_from_saliency(saliency, *self.thresholds)
        if not self.hint_band:
            return fg, bg, saliency
        split = self.split(image, saliency)
        dense_fg, dense_bg = confident_regions(split, self.hint_band)
        fg, bg = torch.maximum(fg, dense_fg) * (1 - dense_bg), torch.maximum(bg, dense_bg) * (1 - dense_fg)
        return fg, bg, split.float() if self.trimap_source == "split" else saliency

    @staticmethod
    def _load_hint(key: str, path: str, size: tuple[int, int]) -> torch.Tensor:
        with reading(key):
            return load_map(path, size)

    def prepare(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        size = tuple(image.shape[-2:])
        if self.hints == "none":
            return {}
        if self.hints == "files":
            fg, bg = (self._load_hint(key, path, size) for key, path in zip(("task.fg_hint", "task.bg_hint"), self.hint_paths))
            guess = None
        else:
            fg, bg, guess = self.auto_hints(image)
        fg, bg = (fg > 0.5).float(), (bg > 0.5).float()
        if fg.sum() == 0 or bg.sum() == 0:
            if guess is not None:
                raise DdipError(
                    "task.hints=auto found no salient region (the image is uniform): give hint maps with "
                    "task.hints=files, or use task.hints=none"
                )
            raise DdipError("a segmentation hint map is empty: the fg and bg hints need white pixels")
        unknown = guess if guess is not None and self.soft_trimap else 0.5
        return {"fg_hint": fg, "bg_hint": bg, "trimap": fg + (1.0 - fg - bg).clamp_min(0.0) * unknown}

    @staticmethod
    def composite(layers: Layers) -> torch.Tensor:
        """``I = m·y_fg + (1 − m)·y_bg`` (Double-DIP Eq. 1, segmentation), for every item of the batch."""
        mask = layers["mask"]
        return mask * layers["foreground"] + (1.0 - mask) * layers["background"]

    def compose(self, layers: Layers) -> torch.Tensor:
        return self.composite(layers)

    def _hint_terms(self, layers: Layers, target: torch.Tensor, maps: dict[str, torch.Tensor]) -> dict:
        weight = self.weights["hint"]
        return {
            "hint_fg": weight * masked_l1_loss(layers["foreground"], target, maps["fg_hint"]),
            "hint_bg": weight * masked_l1_loss(layers["background"], target, maps["bg_hint"]),
        }

    def loss_terms(self, layers, target, maps, step, steps):
        warmup, hint_steps = self.warmup_steps(steps), self.hint_steps(steps)
        if step < warmup:
            terms = self._hint_terms(layers, target, maps)
            terms["trimap"] = self.weights["hint"] * (layers["mask"] - maps["trimap"]).abs().mean()
            return terms
        since = step - warmup
        ramp = min(1.0, since / hint_steps) if hint_steps else 1.0
        terms = self._hint_terms(layers, target, maps) if maps and since <= hint_steps else {}
        terms["reconstruction"] = self.weights["reconstruction"] * self.reconstruction(layers, target)
        if self.weights["exclusion"]:
            terms["exclusion"] = self.weights["exclusion"] * exclusion_loss(layers["foreground"], layers["background"])
        terms["binarization"] = self.weights["binarization"] * ramp * binarization_loss(layers["mask"])
        return terms

    def reconstruction(self, layers: Layers, target: torch.Tensor) -> torch.Tensor:
        """Layer-wise ``mean(m·|y_fg − I| + (1 − m)·|y_bg − I|)``: each pixel is charged to the layer the mask
        gives it to, so the mask moves towards the layer that explains the pixel better (the mixture-of-experts
        form of layered models); or the reference's ``L1(m·y_fg + (1 − m)·y_bg, I)`` (Double-DIP Eq. 1)."""
        if not self.layerwise:
            return reconstruction_loss(self.composite(layers), target)
        mask = layers["mask"]
        errors = mask * (layers["foreground"] - target).abs() + (1 - mask) * (layers["background"] - target).abs()
        return errors.mean()

    # --- results ----------------------------------------------------------------------------------------
    def refine(self, soft_mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Guided-filter refinement (He, Sun, Tang, TPAMI 2013) of a 1×H×W mask with the image as guide."""
        radius = round(self.refine_radius * min(image.shape[-2:]))
        if radius < 1:
            return soft_mask
        return guided_filter(image[None], soft_mask[None], radius, self.refine_eps)[0].clamp(0.0, 1.0)

    @staticmethod
    def border_coverage(mask: torch.Tensor) -> float:
        """Mean of a …×H×W mask (one or a batch) over a band along the image border (2 % of the shorter side, ≥ 1 px)."""
        band = max(1, round(0.02 * min(mask.shape[-2:])))
        border = torch.ones_like(mask, dtype=torch.bool)
        border[..., band:-band, band:-band] = False
        return float(mask[border].mean())

    def orient(self, layers: Layers) -> tuple[Layers, bool]:
        """Hint-free runs: make the foreground the layer that covers less of the border."""
        if self.hints != "none" or self.border_coverage(layers["mask"]) <= 0.5:
            return layers, False
        flipped = {"foreground": layers["background"], "background": layers["foreground"], "mask": 1.0 - layers["mask"]}
        return flipped, True

    def decision(self, layers: Layers) -> torch.Tensor:
        """The raw mask thresholded: which pixels the fit gives to the foreground layer."""
        return layers["mask"] > self.threshold

    def binary_mask(self, layers: Layers, image: torch.Tensor) -> torch.Tensor:
        return (self.refine(layers["mask"][0], image) > self.threshold).float()

    def ground_truth_metrics(self, layers: Layers, truth: dict[str, torch.Tensor], image: torch.Tensor) -> dict[str, float]:
        if "mask" not in truth:
            return {}
        raw = (self.orient(layers)[0]["mask"][0, 0] > self.threshold).float()
        return {"iou_raw": iou(raw, truth["mask"])}

    def finalize(self, chosen, final, image, truth):
        chosen, flipped = self.orient(chosen)
        final, _ = self.orient(final)
        soft = self.refine(chosen["mask"][0], image)
        images = {
            "mask": (soft > self.threshold).float(),
            "soft_mask": chosen["mask"][0],
            "foreground": chosen["foreground"][0],
            "background": chosen["background"][0],
            "reconstruction": self.compose(chosen)[0].clamp(0.0, 1.0),
        }
        metrics = {
            "foreground_rule": "hinted layer" if self.hints != "none" else "layer covering less border",
            "mask_flipped": flipped,
            "mask_fraction": float(images["mask"].mean()),
        }
        if "mask" in truth:
            gt = truth["mask"]
            metrics |= {
                "iou_chosen": iou(images["mask"][0], gt),
                "iou_chosen_raw": iou((chosen["mask"][0, 0] > self.threshold).float(), gt),
                "iou_final": iou(self.binary_mask(final, image)[0], gt),
                "iou_final_raw": iou((final["mask"][0, 0] > self.threshold).float(), gt),
            }
        return images, metrics

    @classmethod
    def fit_record(cls, case: BenchmarkCase, cfg: DictConfig, metrics: dict) -> dict:
        """The IoU of the fit's chosen mask, of its final one and of the oracle's raw mask, and the timings."""
        return case.record(
            case.method(cls.fit_label),
            iou=metrics["iou_chosen"],
            iou_final=metrics["iou_final"],
            oracle_iou_raw=metrics.get("oracle_iou_raw"),
            seconds=metrics["wall_seconds"],
            seconds_per_step=metrics["seconds_per_step"],
            steps=metrics["steps"],
        )

    @classmethod
    def baseline_records(cls, case: BenchmarkCase) -> list[dict]:
        """GrabCut (:func:`ddip.baselines.grabcut`, the box = the image minus 4 px), by its IoU."""
        mask, seconds = timed(grabcut, case.image())
        truth = load_map(case.truth_path("mask"), mask.shape)
        return [case.record("GrabCut (box − 4 px)", iou=iou(torch.from_numpy(mask).float(), truth), seconds=seconds)]


def iou(mask: torch.Tensor, true_mask: torch.Tensor) -> float:
    """Intersection over union of two H×W masks in [0, 1] (ground truth thresholded at 0.5)."""
    return float(binary_jaccard_index(mask.flatten(), (true_mask.flatten() > 0.5).long(), threshold=0.5))
