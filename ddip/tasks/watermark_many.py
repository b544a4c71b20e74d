"""Double-DIP watermark removal from several images sharing one watermark, no hint (Gandelsman, Shocher, Irani, CVPR
2019, Sec. 4.4).

Physics (Eq. 1 with the watermark's mask), for each image i: ``I_i = m·w + (1 − m)·c_i``, with ``c_i`` image i's
clean image and the watermark ``w`` and its mask ``m`` the same in every image (:func:`ddip.tasks.watermark.composite`
with no hint). Generators: one clean generator per image (``clean_1`` … ``clean_n``, declared once the images are
counted: :meth:`WatermarkMany.given_images`), one watermark generator and one mask generator, each with its own noise
input; only the clean layers' inputs are jittered (the reference's). What the images have in common is the watermark:
one shared pair of generators explains it in every image at once, where each clean generator would have to learn it
again; no hint is needed.

Loss (the reference's ``Σ_i L1(m·w + (1 − m)·c_i, I_i)``, as a mean over the images): ``reconstruction·L1`` of the
composites against the images and ddip's ``sparsity·mean(m)`` (most of an image is no watermark); one stage.

ddip's ``flat_watermark`` makes the watermark one colour, its generator's mean over the image (a text or logo in one
ink), as ``task=watermark`` does.

Output (``output``): ``formula``, each image's physics solved for its clean image with the learnt watermark and mask,
``c_i = (I_i − m·w)/(1 − m)`` (:func:`ddip.tasks.watermark.solved_clean`): the input where the mask is 0; ``mask``, the
clean layer where the mask is at least ``mask_threshold`` and the input elsewhere (the reference's final images);
``clean``, the clean layers. The output is chosen without ground truth by the reconstruction PSNR over all images (the
reference: of the first image).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F

from ddip.baselines import opencv_inpaint
from ddip.benchmark import psnr_fit_record, timed
from ddip.data import image_paths, stacked_images
from ddip.errors import check_choice, check_flag, check_range
from ddip.losses import reconstruction_loss
from ddip.metrics import psnr, ssim
from ddip.saliency import otsu_threshold
from ddip.tasks.base import GeneratorSpec, Layers, NoiseInput, Task, loss_weights
from ddip.tasks.video import frames_of, stack_frames
from ddip.tasks.watermark import composite, flat_ink, solved_clean

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ddip.benchmark import BenchmarkCase

OUTPUTS = ("formula", "mask", "clean")


def image_scores(output: torch.Tensor, truth: torch.Tensor, suffix: str = "") -> dict[str, float | list[float]]:
    """PSNR and SSIM of each image of ``output`` against its ``truth`` (both stacked, 3n×H×W, or batches of n): their
    means over the images (``psnr_<suffix>``, ``ssim_<suffix>``; without a suffix ``psnr``, ``ssim``) and each image's
    PSNR (``psnr_<suffix>_images``)."""
    pairs = list(zip(frames_of(output), frames_of(truth)))
    psnrs = [psnr(estimate, reference) for estimate, reference in pairs]
    ssims = [ssim(estimate, reference) for estimate, reference in pairs]
    end = f"_{suffix}" if suffix else ""
    return {f"psnr{end}": sum(psnrs) / len(psnrs), f"ssim{end}": sum(ssims) / len(ssims), f"psnr{end}_images": psnrs}


class WatermarkMany(Task):
    """Removes one watermark shared by several images (``data.images``), with no hint of where it is.

    Args:
        weights: loss weights ``reconstruction`` (the composites against the images) and ``sparsity`` (the mask's mean:
            most of an image is no watermark; not in the reference, 0 = off).
        output: ``formula`` (each image's physics solved for its clean image), ``mask`` (the clean layer where the
            mask is at least ``mask_threshold``, the input elsewhere) or ``clean`` (the clean layers).
        mask_threshold: of ``output=mask`` (reference 0.1).
        formula_floor: of ``output=formula``: the least ``1 − m`` divided by.
        flat_watermark: the watermark is one colour, its generator's mean over the image (``false``: the generator's
            output, the reference).
        input_channels, input_scale: depth and amplitude of the noise inputs (reference 2, 1/10 of uniform noise).
    """

    primary_metric = "psnr"
    image_count = (2, None)
    truth_kinds: ClassVar[dict[str, str]] = {"clean": "images"}
    fit_label = "ddip (Double-DIP watermark, many images)"

    def __init__(
        self,
        weights: dict | None = None,
        output: str = "formula",
        mask_threshold: float = 0.1,
        formula_floor: float = 0.2,
        flat_watermark: bool = False,
        input_channels: int = 2,
        input_scale: float = 0.1,
        **common,
    ):
        super().__init__(**common)
        check_choice("task.output", output, OUTPUTS)
        check_range("task.mask_threshold", mask_threshold, 0, 1)
        check_range("task.formula_floor", formula_floor, 0, 1, open_low=True)
        check_flag("task.flat_watermark", flat_watermark)
        self.output, self.mask_threshold, self.formula_floor, self.flat_watermark = output, mask_threshold, formula_floor, flat_watermark
        self.weights = loss_weights({"reconstruction": 1.0, "sparsity": 0.0}, weights)
        self.input_channels, self.input_scale = input_channels, input_scale
        self.given_images(self.image_count[0])

    def given_images(self, count: int) -> None:
        """One clean generator per image (``clean_1`` … ``clean_<count>``), the watermark's and the mask's."""
        self.count = count
        names = [f"clean_{index}" for index in range(1, count + 1)] + ["watermark", "mask"]
        self.inputs = {name: NoiseInput(self.input_channels, self.input_scale, perturb=name.startswith("clean")) for name in names}
        self.generators = {name: GeneratorSpec(1 if name == "mask" else 3, name) for name in names}

    # --- physics and losses ---------------------------------------------------------------------------------
    def split(self, layers: Layers) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the clean layers as a batch, n×3×H×W; the watermark, one colour with :attr:`flat_watermark`; the mask)."""
        cleans = torch.cat([layers[f"clean_{index}"] for index in range(1, self.count + 1)])
        watermark = flat_ink(layers["watermark"]) if self.flat_watermark else layers["watermark"]
        return cleans, watermark, layers["mask"]

    def composites(self, layers: Layers) -> torch.Tensor:
        """Each image's ``m·w + (1 − m)·c_i``, n×3×H×W."""
        return composite(*self.split(layers))

    def compose(self, layers: Layers) -> torch.Tensor:
        """The images' composites stacked along the channel axis as the images are, 1×3n×H×W."""
        return stack_frames(self.composites(layers))

    def loss_terms(self, layers, target, maps, step, steps):
        """``reconstruction·L1(composites, images)`` (the mean over the images of each one's L1) and
        ``sparsity·mean(m)``."""
        terms = {"reconstruction": self.weights["reconstruction"] * reconstruction_loss(self.compose(layers), target)}
        if self.weights["sparsity"]:
            terms["sparsity"] = self.weights["sparsity"] * layers["mask"].mean()
        return terms

    # --- output and scores ----------------------------------------------------------------------------------
    def cleaned(self, layers: Layers, image: torch.Tensor, output: str | None = None) -> torch.Tensor:
        """The watermark-free images (n×3×H×W in [0, 1]) of the stacked ``image`` (3n×H×W) by the rule ``output``
        (default :attr:`output`)."""
        output = output or self.output
        cleans, watermark, mask = self.split(layers)
        images = frames_of(image)
        if output == "formula":
            return solved_clean(images, cleans, watermark, mask, self.formula_floor).clamp(0.0, 1.0)
        cleans = cleans.clamp(0.0, 1.0)
        if output == "clean":
            return cleans
        keep = (mask < self.mask_threshold).float()
        return keep * images + (1.0 - keep) * cleans

    def evaluation_metrics(self, layers, truth, image, maps):
        """The mean PSNR over the images of the output as it would be saved."""
        return {"psnr": image_scores(self.cleaned(layers, image), truth["clean"])["psnr"]} if "clean" in truth else {}

    def panel(self, layers: Layers) -> dict[str, torch.Tensor]:
        """The first image's reconstruction and clean layer, the watermark ``m·w`` and the mask."""
        cleans, watermark, mask = self.split(layers)
        return {"reconstruction": self.composites(layers)[0], "clean": cleans[0], "watermark": (mask * watermark)[0], "mask": mask[0]}

    def finalize(self, chosen, final, image, truth):
        """``clean/NNN.png`` for each image (:meth:`cleaned`), the shared ``watermark.png`` (``m·w``) and ``mask.png``;
        with ``data.truth.clean`` (one clean image per image), the mean PSNR/SSIM over the images of the chosen and the
        final output and of the input, each image's PSNR and every output rule's mean PSNR."""
        _, watermark, mask = self.split(chosen)
        images = {f"clean/{index:03d}": clean for index, clean in enumerate(self.cleaned(chosen, image))}
        images |= {"watermark": (mask * watermark)[0].clamp(0.0, 1.0), "mask": mask[0]}
        metrics = {"output_rule": self.output, "images": self.count, "mask_fraction": float((mask >= self.mask_threshold).float().mean())}
        if "clean" in truth:
            metrics |= image_scores(self.cleaned(chosen, image), truth["clean"], "chosen")
            metrics |= image_scores(self.cleaned(final, image), truth["clean"], "final")
            metrics |= image_scores(image, truth["clean"], "input")
            for rule in OUTPUTS:
                metrics[f"psnr_chosen_{rule}"] = image_scores(self.cleaned(chosen, image, rule), truth["clean"])["psnr"]
        return images, metrics

    # --- benchmark ------------------------------------------------------------------------------------------
    @classmethod
    def fit_record(cls, case: BenchmarkCase, cfg: DictConfig, metrics: dict) -> dict:
        """The mean PSNR/SSIM over the images (:func:`ddip.benchmark.psnr_fit_record`)."""
        return psnr_fit_record(case, cls.fit_label, metrics)

    @classmethod
    def baseline_records(cls, case: BenchmarkCase) -> list[dict]:
        """The watermarked inputs, and OpenCV's Telea inpainting of each image inside the watermark found by the median
        of the images' gradients (:func:`median_gradient_inpaint`), by their mean PSNR/SSIM over the images."""
        images = stacked_images(image_paths(str(case.path("images"))))
        truth = stacked_images(image_paths(str(case.truth_path("clean")), "truth.clean"))
        (filled, found), seconds = timed(median_gradient_inpaint, images)
        scores = [image_scores(output, truth) for output in (images, filled)]
        return [
            case.record("watermarked input", psnr=scores[0]["psnr"], ssim=scores[0]["ssim"]),
            case.record("median gradient + OpenCV Telea", psnr=scores[1]["psnr"], ssim=scores[1]["ssim"], mask_fraction=float(found.mean()), seconds=seconds),
        ]


def sobel(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The horizontal and vertical Sobel derivatives of a batch of images (N×C×H×W), replicate-padded."""
    kernel = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8
    channels = images.shape[1]
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kernel.expand(channels, 1, 3, 3), groups=channels)
    gy = F.conv2d(padded, kernel.t().expand(channels, 1, 3, 3), groups=channels)
    return gx, gy


def median_gradient_mask(images: torch.Tensor) -> torch.Tensor:
    """Where a watermark shared by the images is (H×W, 1 = watermark), as Dekel et al. detect it (CVPR 2017, Sec. 3.1):
    the per-pixel median over the images of their gradients is the watermark's gradient (the images' own gradients
    differ from image to image and their median tends to 0). Its magnitude (the largest over the channels) is split
    twice by Otsu's threshold, the second time among the pixels above the first (once leaves the images' strongest
    common edges in: a third of the image on a tune case). ``images``: n×3×H×W."""
    gx, gy = sobel(images)
    magnitude = torch.hypot(gx.median(dim=0).values, gy.median(dim=0).values).amax(dim=0)
    threshold = 0.0
    for _ in range(2):
        above = magnitude[magnitude > threshold]
        if above.numel() == 0:
            break
        peak = float(above.max())
        threshold = max(threshold, otsu_threshold(above / peak) * peak)
    return (magnitude > threshold).float()


def median_gradient_inpaint(stacked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The classical baseline: OpenCV's Telea inpainting (:func:`ddip.baselines.opencv_inpaint`) of each image (stacked,
    3n×H×W) inside the watermark found by the median gradient (:func:`median_gradient_mask`): (the images, stacked;
    the mask)."""
    images = frames_of(stacked)
    found = median_gradient_mask(images)
    return torch.cat([opencv_inpaint(image, 1.0 - found, "telea") for image in images]), found
