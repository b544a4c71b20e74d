"""Automatic foreground / background hints for Double-DIP segmentation.

Double-DIP (Gandelsman, Shocher, Irani, CVPR 2019, Sec. 4.1) starts segmentation from two binary hints. The
authors took a saliency map, histogram-equalised it to uint8 and thresholded it: foreground hint where the
equalised value is > 239.5, background hint where it is ≤ 15.5, i.e. roughly the 6 % most and the 6 % least
salient pixels. :func:`hints_from_saliency` reproduces that recipe; :func:`saliency_map` supplies the map.

The saliency is the *boundary connectivity* background measure of Zhu, Liang, Wei, Sun, "Saliency
Optimization from Robust Background Detection", CVPR 2014, computed on a pixel grid instead of
superpixels, with texture-aware features, and refined at full resolution by the guided filter of He, Sun,
Tang (TPAMI 2013). A region is background when it touches the image border along a long stretch compared
with its size; a pasted or photographed object touches it little or not at all. Unlike contrast or spectral
saliency, the measure does not reward high-contrast texture, so it picks the right layer of texture
composites whichever of the two textures is busier.

The Double-DIP authors used Goferman et al.'s context-aware saliency (CVPR 2010). Its patch distinctness
(a patch is salient when even its nearest patches differ from it) is high wherever the texture is busy;
in our development runs on the composites of ``scripts/hint_quality.py`` it put the foreground hint on
the background when the background was the busier texture, as spectral residual saliency did.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ddip.baselines import grabcut
from ddip.filters import box_filter, guided_filter

WORKING_SIDE = 64
"""Longest side of the reduced image on which saliency is computed (all pixel pairs are compared)."""
TEXTURE_RADII = (2, 4)
"""Radii, in reduced-image pixels, of the windows over which local texture statistics are pooled."""
KERNEL_QUANTILE = 0.1
"""The appearance kernel's bandwidth is this quantile of all pairwise feature distances."""
REFINE_FRACTION = 1 / 16
"""Guided-filter radius as a fraction of the longest side of the full-resolution image."""
REFINE_EPS = 1e-2
"""Guided-filter regularisation (saliency and image both in [0, 1])."""
FALLBACK_FRACTION = 0.06
GRABCUT_SURE = 0.05
"""The most salient fraction of the pixels that :func:`grabcut_split` takes as certain foreground."""
GRABCUT_SURE_BACKGROUND = 0.3
"""The least salient fraction that it takes as certain background."""
"""Share of pixels each hint takes when histogram equalisation cannot produce both hints."""

_SRGB_TO_XYZ = torch.tensor([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
_D65_WHITE = torch.tensor([0.9505, 1.0, 1.089])


def _rgb_to_lab(image: torch.Tensor) -> torch.Tensor:
    """CIELab (D65) of an sRGB image (3×H×W in [0, 1]), every channel divided by 100."""
    linear = torch.where(image > 0.04045, ((image + 0.055) / 1.055) ** 2.4, image / 12.92)
    xyz = torch.einsum("ij,jhw->ihw", _SRGB_TO_XYZ.to(image), linear) / _D65_WHITE.to(image)[:, None, None]
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    return torch.stack([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])]) / 100


def _reduce(image: torch.Tensor, side: int) -> torch.Tensor:
    """Area-average ``image`` (C×H×W) so that its longest side is at most ``side``."""
    height, width = image.shape[-2:]
    scale = min(1.0, side / max(height, width))
    if scale == 1.0:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(image[None], size=size, mode="area")[0]


def _texture_features(lab: torch.Tensor, radii: tuple[int, ...]) -> torch.Tensor:
    """Per-pixel texture descriptor (N×D, N = H·W): for each window radius, the local mean and standard
    deviation of each Lab channel and the local mean absolute horizontal and vertical differences."""
    grad_x = F.pad((lab[:, :, 1:] - lab[:, :, :-1]).abs(), (0, 1))
    grad_y = F.pad((lab[:, 1:] - lab[:, :-1]).abs(), (0, 0, 0, 1))
    planes = torch.cat([lab, lab * lab, grad_x, grad_y])[None]
    features = []
    for radius in radii:
        mean, mean_sq, mean_gx, mean_gy = box_filter(planes, radius)[0].split(3)
        features += [mean, (mean_sq - mean * mean).clamp_min(0).sqrt(), mean_gx, mean_gy]
    return torch.cat(features).flatten(1).T


def _frame(height: int, width: int, device: torch.device) -> torch.Tensor:
    """Indicator (N,) of the pixels on the image border, the first and last row and column."""
    frame = torch.ones(height, width, device=device)
    frame[1:-1, 1:-1] = 0
    return frame.flatten()


def boundary_connectivity(features: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """Zhu et al. (CVPR 2014) boundary connectivity of every pixel i, in the paper's soft form:
    ``BndCon(i) = Len_bnd(i) / sqrt(Area(i))`` with ``Area(i) = Σ_j k_ij``, ``Len_bnd(i) = Σ_{j on the border}
    k_ij`` and soft region membership ``k_ij = exp(−d²(i, j) / 2σ²)``.

    Simplification: the paper measures ``d`` geodesically along a superpixel graph, so that a region is what
    is *connected* to a pixel; here ``d`` is the plain distance between texture features, so a region is
    everything that *looks like* the pixel. That suits texture composites, where one texture recurs all
    over the image. ``σ`` is set from the data: the :data:`KERNEL_QUANTILE` quantile of the pairwise
    distances (those of every k-th pixel to all pixels, about 1024 rows, to bound the cost of the selection).
    """
    distance = torch.cdist(features, features)
    sample = distance[:: max(1, distance.shape[0] // 1024)].flatten()
    sigma = sample.kthvalue(max(1, round(KERNEL_QUANTILE * sample.numel()))).values.clamp_min(1e-6)
    kernel = torch.exp(-0.5 * (distance / sigma) ** 2)
    return (kernel @ frame) / kernel.sum(1).sqrt()


def saliency_map(image: torch.Tensor) -> torch.Tensor:
    """Saliency (H×W in [0, 1]) of an RGB image (3×H×W in [0, 1]): low on background, high on foreground.

    1. The image is area-reduced to a longest side of :data:`WORKING_SIDE` and converted to CIELab.
    2. Every pixel gets a texture descriptor: local Lab mean and standard deviation and mean absolute
       derivatives, pooled over windows of radii :data:`TEXTURE_RADII`.
    3. Its background measure is the boundary connectivity of Zhu et al. (CVPR 2014), see
       :func:`boundary_connectivity`; saliency is ``1 / (1 + BndCon)`` (the paper turns BndCon into a
       background probability ``1 − exp(−BndCon²/2)``; our monotone map keeps the ordering but does not
       saturate, so histogram equalisation can still rank the clear background).
    4. The map is bilinearly upsampled and refined by the colour guided filter (He et al., TPAMI 2013,
       Eqs. 14–16) with the full-resolution image as guide, which snaps it to the object's edges.
    5. It is rescaled to [0, 1]. We leave out Zhu et al.'s background-weighted contrast and their final
       optimisation: the contrast favours small regions of a distinct colour, which can be background (in
       our runs it marked the grass of the zebra photo, ``ddip/assets/zebra_crop.png``, as salient).

    Deterministic; gray images (three equal channels) work unchanged; any H, W ≥ 1.
    """
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an RGB image of shape 3×H×W, got {tuple(image.shape)}")
    image = image.float().clamp(0, 1)
    height, width = image.shape[-2:]
    lab = _rgb_to_lab(_reduce(image, WORKING_SIDE))
    features = _texture_features(lab, TEXTURE_RADII)
    connectivity = boundary_connectivity(features, _frame(*lab.shape[-2:], image.device))
    coarse = (1 / (1 + connectivity)).reshape(1, 1, *lab.shape[-2:])
    fine = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    fine = guided_filter(image[None], fine, max(1, round(max(height, width) * REFINE_FRACTION)), REFINE_EPS)[0, 0]
    return (fine - fine.min()) / (fine.max() - fine.min()).clamp_min(1e-12)


def equalize_histogram(saliency: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation of a map in [0, 1] (H×W), as ``cv2.equalizeHist`` does it on its uint8 copy.

    The map is quantised to 256 levels, and level ``v`` is sent to ``round(255 · (cdf(v) − cdf(v_min)) /
    (N − cdf(v_min)))`` with ``v_min`` the lowest occupied level. A constant map is returned unchanged
    (quantised), as OpenCV does. Returns float values in [0, 255].
    """
    levels = (saliency.float().clamp(0, 1) * 255).round().long()
    histogram = torch.bincount(levels.flatten(), minlength=256)
    lowest = histogram[histogram.nonzero()[0, 0]]
    if lowest == levels.numel():
        return levels.float()
    cdf = histogram.cumsum(0)
    lut = ((cdf - lowest).clamp_min(0).double() * 255 / (levels.numel() - lowest)).round().float()
    return lut[levels]


def _extremes(saliency: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``fraction`` most and least salient pixels (at least one each, never overlapping), ties broken by
    raster order."""
    count = saliency.numel()
    k = min(max(1, round(fraction * count)), count // 2)
    order = torch.argsort(saliency.flatten(), stable=True)
    fg, bg = saliency.new_zeros(count), saliency.new_zeros(count)
    fg[order[count - k :]] = 1
    bg[order[:k]] = 1
    return fg.reshape(saliency.shape), bg.reshape(saliency.shape)


def hints_from_saliency(
    saliency: torch.Tensor, fg_threshold: float = 239.5, bg_threshold: float = 15.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground and background hints (H×W, float 0/1) of Double-DIP (Sec. 4.1, reference code): the
    histogram-equalised saliency above ``fg_threshold`` and at most ``bg_threshold``.

    If equalisation leaves either hint empty (a constant or nearly constant map), both fall back to the
    :data:`FALLBACK_FRACTION` most and least salient pixels. The hints are never empty (for maps of at
    least two pixels) and never overlap.
    """
    if bg_threshold >= fg_threshold:
        raise ValueError(f"bg_threshold ({bg_threshold}) must be below fg_threshold ({fg_threshold})")
    if saliency.numel() < 2:
        raise ValueError("a saliency map needs at least two pixels to give two hints")
    equalised = equalize_histogram(saliency)
    fg, bg = (equalised > fg_threshold).float(), (equalised <= bg_threshold).float()
    if fg.sum() == 0 or bg.sum() == 0:
        return _extremes(saliency, FALLBACK_FRACTION)
    return fg, bg


def otsu_threshold(saliency: torch.Tensor) -> float:
    """Otsu's threshold (IEEE SMC 1979) of a map in [0, 1]: the level that maximises the between-class
    variance of its 256-bin histogram."""
    histogram = torch.histc(saliency.float().clamp(0, 1), bins=256, min=0.0, max=1.0).double()
    probability = histogram / histogram.sum()
    weight = probability.cumsum(0)
    mean = (probability * torch.arange(256, dtype=torch.float64)).cumsum(0)
    between = (mean[-1] * weight - mean) ** 2 / (weight * (1 - weight)).clamp_min(1e-12)
    return (int(between.argmax()) + 1) / 256  # upper edge of the last background bin


def _erode(region: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary erosion (square window of side 2·radius + 1) of an H×W 0/1 map; outside the image counts as in."""
    outside = F.max_pool2d((1.0 - region.float())[None, None], 2 * radius + 1, stride=1, padding=radius)
    return 1.0 - outside[0, 0]


def otsu_split(image: torch.Tensor, saliency: torch.Tensor) -> torch.Tensor:
    """The foreground of the saliency's Otsu split (H×W bool); ``image`` is not read."""
    return saliency > otsu_threshold(saliency)


def grabcut_split(image: torch.Tensor, saliency: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """The foreground (H×W bool) of GrabCut (Rother, Kolmogorov, Blake, SIGGRAPH 2004; OpenCV) on the RGB
    ``image`` started from the saliency instead of a box: the Otsu split as probable fore- and background, the
    :data:`GRABCUT_SURE` most and :data:`GRABCUT_SURE_BACKGROUND` least salient pixels as certain. Colour models
    and a graph cut snap the split to the regions' colours and edges. Seeded: the same input gives the same split."""
    import cv2

    values = saliency.double().numpy()
    mask = np.where(otsu_split(image, saliency).numpy(), cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[values >= np.quantile(values, 1 - GRABCUT_SURE)] = cv2.GC_FGD
    mask[values <= np.quantile(values, GRABCUT_SURE_BACKGROUND)] = cv2.GC_BGD
    cv2.setRNGSeed(0)
    try:
        return torch.from_numpy(grabcut(image.float().clamp(0, 1), iterations=iterations, start=mask))
    except cv2.error:  # a component without pixels (a near-constant image): keep the saliency's split
        return otsu_split(image, saliency)


def box_split(image: torch.Tensor, saliency: torch.Tensor) -> torch.Tensor:
    """The foreground (H×W bool) of GrabCut started from a box, the image less a 4-px margin, as the suite's GrabCut
    baseline runs it (:func:`ddip.baselines.grabcut`). Objects touching the border lose their border pixels (the
    margin is certain background). Where GrabCut finds no foreground, or nothing else, the saliency's Otsu split is
    returned instead. Seeded: the same input gives the same split."""
    import cv2

    cv2.setRNGSeed(0)
    try:
        foreground = torch.from_numpy(grabcut(image.float().clamp(0, 1)))
    except cv2.error:  # a component without pixels (a near-constant image)
        return otsu_split(image, saliency)
    if not foreground.any() or foreground.all():
        return otsu_split(image, saliency)
    return foreground


HINT_SPLITS = {"otsu": otsu_split, "grabcut": grabcut_split, "box": box_split}
"""How ``hints=auto`` splits the image into fore- and background before its hints are eroded from the split."""


def confident_regions(foreground: torch.Tensor, band: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense hints: the pixels on either side of a fore/background split (H×W bool) that lie farther than ``band``
    (a fraction of the shorter side) from it, i.e. both sides eroded by that radius."""
    radius = max(1, round(band * min(foreground.shape[-2:])))
    return _erode(foreground, radius), _erode(~foreground, radius)
