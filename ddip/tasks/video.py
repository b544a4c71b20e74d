"""Double-DIP foreground/background decomposition of a short clip (Gandelsman, Shocher, Irani, CVPR 2019, Sec. 4.5).

Physics, per frame t (Eq. 1 with the mask of Sec. 4.1): ``I_t ≈ m_t·y_fg,t + (1 − m_t)·y_bg,t``. The three generators
of :class:`ddip.tasks.seg.Segmentation` run on a batch of frames: their noise inputs are correlated in time (frame
t's input is frame t − 1's plus a small increment, :class:`ddip.tasks.base.NoiseInput` ``per_image``), so each
layer and the mask change smoothly from frame to frame; a temporal term ``mean|m_t − m_{t−1}|`` can also hold the
masks together (``weights.temporal``, off by default: on the video suite it lowered the IoU). The frames reach the
task stacked along the channel axis (``data.images``: a folder of frames, a list, or a video file), 3n×H×W; the
losses see them as a batch of n, or, with ``frames_per_step`` = K, each step a window of K consecutive frames
(:attr:`ddip.tasks.base.Task.images_per_step`), so that a clip of any length fits in the memory of K frames.

Hints come from motion instead of saliency (the segmentation recipe otherwise, warm-up and all): the clip's
static background is estimated as the per-pixel temporal median, a pixel's motion is its largest channel
difference from it, and the motion's Otsu split (the median is the background where the foreground covers a pixel
in fewer than half the frames: a camera that holds still and an object that moves) is snapped to the frames'
colours and edges by GrabCut, one colour model for the whole clip (``split=grabcut``; ``motion`` keeps the motion's
split). That split, eroded on both sides by ``hint_band``, gives each frame's foreground and background hints. The
motion split alone (background subtraction) and with GrabCut are the classical baselines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F

from ddip.baselines import grabcut
from ddip.benchmark import timed
from ddip.data import image_paths, load_masks, stacked_images
from ddip.errors import DdipError, check_choice, check_range
from ddip.losses import temporal_loss
from ddip.saliency import confident_regions, otsu_threshold
from ddip.tasks.base import GeneratorSpec, Layers, NoiseInput
from ddip.tasks.seg import Segmentation, iou

if TYPE_CHECKING:
    from ddip.benchmark import BenchmarkCase

VIDEO_HINT_MODES = ("auto", "none")
VIDEO_SPLITS = ("grabcut", "motion")
MIN_MOTION = 0.05
"""The smallest largest change (in [0, 1]) that counts as motion (``task.min_motion``)."""


def frames_of(stacked: torch.Tensor) -> torch.Tensor:
    """A clip stacked along the channel axis (3n×H×W, or 1×3n×H×W) as a batch of frames, n×3×H×W."""
    return stacked.reshape(-1, 3, *stacked.shape[-2:])


def stack_frames(frames: torch.Tensor) -> torch.Tensor:
    """A batch of n frames (n×C×H×W) stacked along the channel axis, 1×nC×H×W."""
    return frames.reshape(1, -1, *frames.shape[-2:])


def motion_map(frames: torch.Tensor) -> torch.Tensor:
    """Each pixel's motion (n×H×W): its largest channel difference from the clip's per-pixel temporal median (the
    static background), averaged over 3×3 pixels."""
    background = frames.median(dim=0).values
    difference = (frames - background).abs().amax(dim=1, keepdim=True)
    return F.avg_pool2d(difference, 3, stride=1, padding=1, count_include_pad=False)[:, 0]


def motion_split(frames: torch.Tensor, min_motion: float, motion: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """Background subtraction: (the moving pixels, n×H×W bool, by the Otsu threshold of the motion; its threshold).
    ``motion`` is the clip's :func:`motion_map` where the caller has it already. A clip whose largest motion is below
    ``min_motion`` is a one-line error."""
    motion = motion_map(frames) if motion is None else motion
    peak = float(motion.max())
    if peak < min_motion:
        raise DdipError(
            f"task=video found no motion in the clip (largest change {peak:.3f} < task.min_motion={min_motion}): "
            "give frames of a moving foreground, or use task.hints=none"
        )
    threshold = max(otsu_threshold(motion / peak) * peak, min_motion)
    return motion > threshold, threshold


def grabcut_motion_split(frames: torch.Tensor, min_motion: float) -> torch.Tensor:
    """The motion split (:func:`motion_split`) snapped to the frames' colours and edges (n×H×W bool): GrabCut
    (Rother et al., SIGGRAPH 2004) on the frames laid side by side, so that one pair of colour models serves the
    whole clip, started with the moving pixels as probable foreground, those moving more than twice the threshold as
    certain foreground, and the rest as probable background. It fills what the median misses where a slow object
    covers a pixel in many frames (the object's middle). Seeded: the same clip gives the same split."""
    import cv2

    motion = motion_map(frames)
    moving, threshold = motion_split(frames, min_motion, motion)
    count, _, height, width = frames.shape
    start = torch.full(moving.shape, cv2.GC_PR_BGD, dtype=torch.uint8)
    start[moving] = cv2.GC_PR_FGD
    start[motion > 2 * threshold] = cv2.GC_FGD
    side_by_side = frames.float().clamp(0, 1).permute(1, 2, 0, 3).reshape(3, height, count * width)
    cv2.setRNGSeed(0)
    try:
        foreground = grabcut(side_by_side, start=start.permute(1, 0, 2).reshape(height, count * width).numpy())
    except cv2.error:  # a component without pixels: keep the motion's split
        return moving
    return torch.from_numpy(foreground).reshape(height, count, width).permute(1, 0, 2).contiguous()


class VideoSegmentation(Segmentation):
    """Foreground/background decomposition of a clip with per-frame masks.

    Args:
        hints: ``auto`` (from the clip's motion) or ``none``.
        split: how ``hints=auto`` splits each frame: ``grabcut`` (:func:`grabcut_motion_split`) or ``motion``
            (:func:`motion_split`, background subtraction).
        min_motion: the smallest largest-change (in [0, 1]) that counts as motion for ``hints=auto``.
        input_increment: frame t's noise input is frame t − 1's plus U(−0.5, 0.5)·input_scale·input_increment.
        background_increment: ``input_increment`` of the background's input; 0 gives every frame the same input,
            so the background layer barely changes in time (a camera that holds still).
        hint_band: the hints are the motion split's sides eroded by this fraction of the shorter side (≥ 1 px; seg's
            default, chosen for video on the video suite's tune split: docs/results/video.md).
        hint_fraction: the hint terms' share of the run after the warm-up (to its end: the motion keeps the layers apart).
        frames_per_step: each step fits a window of this many consecutive frames (drawn per step), so that memory
            is bounded by the window, not the clip; the outputs are evaluated in windows of as many frames (BatchNorm
            sees batches of one size). ``None`` or 0: every step fits all the frames.
        weights: the segmentation's terms and ``temporal``, the mask's change between neighbouring frames.
        The other arguments are :class:`~ddip.tasks.seg.Segmentation`'s.
    """

    image_count = (2, None)
    fit_label = "ddip (Double-DIP video)"
    default_weights: ClassVar[dict[str, float]] = Segmentation.default_weights | {"temporal": 0.0}
    generators: ClassVar[dict[str, GeneratorSpec]] = Segmentation.generators | {"background": GeneratorSpec(3, "background")}

    def __init__(
        self,
        hints: str = "auto",
        split: str = "grabcut",
        min_motion: float = MIN_MOTION,
        input_channels: int = 2,
        input_scale: float = 0.01,
        input_increment: float = 0.3,
        background_increment: float = 0.0,
        hint_band: float = 0.04,
        hint_fraction: float = 2 / 3,
        frames_per_step: int | None = None,
        **segmentation,
    ):
        check_choice("task.hints", hints, VIDEO_HINT_MODES)
        check_choice("task.split", split, VIDEO_SPLITS)
        check_range("task.min_motion", min_motion, 0, 1, open_low=True)
        check_range("task.input_increment", input_increment, 0)
        if frames_per_step is not None:
            check_range("task.frames_per_step", frames_per_step, 0, whole=True)
        super().__init__(
            hints=hints, input_channels=input_channels, input_scale=input_scale, hint_band=hint_band, hint_fraction=hint_fraction, **segmentation
        )
        per_frame = NoiseInput(input_channels, input_scale, per_image=True, increment=input_increment)
        background = NoiseInput(input_channels, input_scale, per_image=True, increment=background_increment)
        self.inputs = {"layers": per_frame, "mask": per_frame, "background": background}
        self.min_motion, self.hint_split = min_motion, split
        self.images_per_step = frames_per_step or None

    def check_frames_per_step(self, frames: int) -> None:
        """A one-line error when a step's window (``task.frames_per_step``) is longer than the clip."""
        if self.images_per_step and self.images_per_step > frames:
            raise DdipError(f"task.frames_per_step={self.images_per_step} is more than the clip's {frames} frames: give at most {frames}, or null for all")

    def prepare(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each frame's hints from the clip's motion (n×H×W each): the foreground, the background, and the warm-up's
        trimap (1 on the foreground hint, 0 on the background hint, and between them the split or, for
        ``split=motion``, the motion over twice the threshold)."""
        self.check_frames_per_step(len(image) // 3)
        if self.hints == "none":
            return {}
        frames = frames_of(image)
        if self.hint_split == "grabcut":
            split = grabcut_motion_split(frames, self.min_motion)
            guess = split.float()
        else:
            motion = motion_map(frames)
            split, threshold = motion_split(frames, self.min_motion, motion)
            guess = (motion / (2 * threshold)).clamp(0, 1)
        hints = [confident_regions(frame, self.hint_band) for frame in split]
        fg = torch.stack([fg for fg, _ in hints]).float()
        bg = torch.stack([bg for _, bg in hints]).float()
        unknown = guess if self.soft_trimap else 0.5
        return {"fg_hint": fg, "bg_hint": bg, "trimap": fg + (1.0 - fg - bg).clamp_min(0.0) * unknown}

    def compose(self, layers: Layers) -> torch.Tensor:
        """The frames ``I_t = m_t·y_fg,t + (1 − m_t)·y_bg,t``, stacked along the channel axis as the clip is."""
        return stack_frames(self.composite(layers))

    def loss_terms(self, layers, target, maps, step, steps):
        """The segmentation's terms on the batch of frames, and the temporal term on the masks."""
        per_frame = {name: value.reshape(-1, 1, *value.shape[-2:]) for name, value in maps.items()}
        terms = super().loss_terms(layers, frames_of(target), per_frame, step, steps)
        if self.weights["temporal"] and len(layers["mask"]) > 1:
            terms["temporal"] = self.weights["temporal"] * temporal_loss(layers["mask"])
        return terms

    def panel(self, layers: Layers) -> dict[str, torch.Tensor]:
        """The first and the last frame's reconstruction and mask."""
        frames, masks = self.composite(layers), layers["mask"]
        return {"first_frame": frames[0], "first_mask": masks[0], "last_frame": frames[-1], "last_mask": masks[-1]}

    def frame_masks(self, layers: Layers, image: torch.Tensor) -> torch.Tensor:
        """Each frame's soft mask refined by the guided filter with its frame as guide (n×1×H×W)."""
        return torch.stack([self.refine(mask, frame) for mask, frame in zip(layers["mask"], frames_of(image))])

    @staticmethod
    def mean_iou(masks: torch.Tensor, true_masks: torch.Tensor) -> tuple[float, float]:
        """(mean, worst) IoU over the frames of n×1×H×W binary masks against n×H×W ground truth."""
        scores = [iou(mask[0], gt) for mask, gt in zip(masks, true_masks)]
        return sum(scores) / len(scores), min(scores)

    def ground_truth_metrics(self, layers: Layers, truth: dict[str, torch.Tensor], image: torch.Tensor) -> dict[str, float]:
        if "mask" not in truth:
            return {}
        raw = (self.orient(layers)[0]["mask"] > self.threshold).float()
        return {"iou_raw": self.mean_iou(raw, truth["mask"])[0]}

    def finalize(self, chosen, final, image, truth):
        chosen, flipped = self.orient(chosen)
        final, _ = self.orient(final)
        masks = (self.frame_masks(chosen, image) > self.threshold).float()
        images = {"preview": preview(frames_of(image), masks)}
        for t, (mask, foreground, background) in enumerate(zip(masks, chosen["foreground"], chosen["background"])):
            images |= {f"mask/{t:03d}": mask, f"foreground/{t:03d}": foreground, f"background/{t:03d}": background}
        metrics = {"frames": len(masks), "mask_flipped": flipped, "mask_fraction": float(masks.mean())}
        metrics["foreground_rule"] = "moving layer (motion hints)" if self.hints != "none" else "layer covering less border"
        if "mask" in truth:
            gt = truth["mask"]  # one mask per frame, n×H×W (the data module checks the count)
            final_masks = (self.frame_masks(final, image) > self.threshold).float()
            (metrics["iou_chosen"], metrics["iou_chosen_worst_frame"]) = self.mean_iou(masks, gt)
            metrics["iou_chosen_raw"] = self.mean_iou((chosen["mask"] > self.threshold).float(), gt)[0]
            metrics["iou_final"] = self.mean_iou(final_masks, gt)[0]
            metrics["iou_final_raw"] = self.mean_iou((final["mask"] > self.threshold).float(), gt)[0]
        return images, metrics

    @classmethod
    def baseline_records(cls, case: BenchmarkCase) -> list[dict]:
        """Background subtraction (:func:`motion_split`: the motion's Otsu split against the temporal median) and the
        same snapped by GrabCut (:func:`grabcut_motion_split`, the default hints' split), by their mean IoU over the
        clip's frames."""
        frames = frames_of(stacked_images(image_paths(str(case.path("images")))))
        truth = load_masks(str(case.truth_path("mask")), "truth.mask", tuple(frames.shape[-2:]))
        splits = {
            "background subtraction (temporal median)": lambda: motion_split(frames, MIN_MOTION)[0],
            "background subtraction + GrabCut": lambda: grabcut_motion_split(frames, MIN_MOTION),
        }
        records = []
        for method, split in splits.items():
            masks, seconds = timed(split)
            records.append(case.record(method, iou=cls.mean_iou(masks[:, None].float(), truth)[0], seconds=seconds))
        return records


def preview(frames: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The clip with its background dimmed to a quarter (n×3×H×W), saved as an animated GIF."""
    return frames * (0.25 + 0.75 * masks)
