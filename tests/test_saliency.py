"""Automatic Double-DIP hints: boundary-connectivity saliency, uint8-style equalisation, thresholded hints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddip.saliency import equalize_histogram, hints_from_saliency, saliency_map

SIZE = 56


def stripes(x: np.ndarray, y: np.ndarray, period: float, angle: float, colours: tuple) -> np.ndarray:
    """Two-colour stripes of the given period and direction (H×W×3)."""
    phase = (x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period
    return np.where((np.sin(phase) > 0)[..., None], np.array(colours[0]), np.array(colours[1]))


def checker(x: np.ndarray, y: np.ndarray, period: int, colours: tuple) -> np.ndarray:
    """Two-colour checkerboard with squares of side ``period`` (H×W×3)."""
    return np.where((((x // period) + (y // period)) % 2 == 0)[..., None], np.array(colours[0]), np.array(colours[1]))


def composite(kind: str, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """A SIZE² image (3×H×W tensor in [0, 1]) of a foreground texture inside an off-centre ellipse over a
    different background texture, with seeded noise; and the ellipse (bool H×W)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    if kind == "stripes_on_checker":
        fg = stripes(x, y, 6, 0.7, ((0.9, 0.7, 0.1), (0.5, 0.2, 0.1)))
        bg = checker(x, y, 5, ((0.1, 0.3, 0.7), (0.3, 0.6, 0.5)))
    elif kind == "checker_on_stripes":
        fg = checker(x, y, 3, ((0.8, 0.2, 0.3), (0.95, 0.9, 0.9)))
        bg = stripes(x, y, 8, -0.4, ((0.2, 0.5, 0.2), (0.6, 0.8, 0.4)))
    else:  # "smooth_on_busy": a nearly flat foreground over a high-contrast background
        fg = np.full((SIZE, SIZE, 3), (0.55, 0.5, 0.6)) + rng.normal(0, 0.02, (SIZE, SIZE, 3))
        bg = checker(x, y, 4, ((0.9, 0.85, 0.8), (0.25, 0.2, 0.3)))
    centre_x, centre_y = rng.uniform(0.4, 0.6, 2) * SIZE
    mask = ((x - centre_x) / (0.26 * SIZE)) ** 2 + ((y - centre_y) / (0.2 * SIZE)) ** 2 <= 1.0
    image = np.where(mask[..., None], fg, bg) + rng.normal(0, 0.03, (SIZE, SIZE, 3))
    return torch.from_numpy(np.clip(image, 0, 1)).permute(2, 0, 1).float(), mask


def assert_valid_hints(fg: torch.Tensor, bg: torch.Tensor, shape: tuple[int, int]) -> None:
    """Both hints: the right shape, binary, non-empty, disjoint."""
    for hint in (fg, bg):
        assert hint.shape == shape and hint.dtype == torch.float32
        assert set(hint.unique().tolist()) <= {0.0, 1.0} and hint.sum() > 0
    assert (fg * bg).sum() == 0


@pytest.mark.parametrize("kind", ["stripes_on_checker", "checker_on_stripes", "smooth_on_busy"])
@pytest.mark.parametrize("seed", [0, 1])
def test_hints_find_the_foreground_texture(kind: str, seed: int) -> None:
    image, mask = composite(kind, seed)
    fg, bg = hints_from_saliency(saliency_map(image))
    assert_valid_hints(fg, bg, mask.shape)
    fg, bg = fg.numpy() > 0.5, bg.numpy() > 0.5
    assert mask[fg].mean() >= 0.9
    assert (~mask)[bg].mean() >= 0.9


def test_saliency_is_a_map_in_the_unit_range() -> None:
    image, _ = composite("stripes_on_checker")
    saliency = saliency_map(image)
    assert saliency.shape == (SIZE, SIZE) and saliency.dtype == torch.float32
    assert saliency.min() >= 0 and saliency.max() <= 1 and torch.isfinite(saliency).all()


def test_saliency_is_deterministic() -> None:
    image, _ = composite("checker_on_stripes")
    assert torch.equal(saliency_map(image), saliency_map(image))
    first, second = hints_from_saliency(saliency_map(image)), hints_from_saliency(saliency_map(image))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@pytest.mark.parametrize("shape", [(5, 7), (4, 4), (7, 300)])
def test_small_and_thin_images(shape: tuple[int, int]) -> None:
    image = torch.rand(3, *shape, generator=torch.Generator().manual_seed(0))
    saliency = saliency_map(image)
    assert saliency.shape == shape and torch.isfinite(saliency).all()
    assert_valid_hints(*hints_from_saliency(saliency_map(image)), shape)


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0])
def test_constant_image_gives_no_nan_and_valid_hints(value: float) -> None:
    image = torch.full((3, 20, 30), value)
    saliency = saliency_map(image)
    assert torch.isfinite(saliency).all()
    assert_valid_hints(*hints_from_saliency(saliency_map(image)), (20, 30))


def test_gray_image_given_as_three_equal_channels() -> None:
    image, mask = composite("smooth_on_busy")
    gray = image.mean(0, keepdim=True).expand(3, -1, -1)
    fg, bg = hints_from_saliency(saliency_map(gray))
    assert_valid_hints(fg, bg, mask.shape)
    assert mask[fg.numpy() > 0.5].mean() >= 0.9


def test_rejects_non_rgb_input() -> None:
    with pytest.raises(ValueError):
        saliency_map(torch.rand(1, 16, 16))


def test_equalisation_matches_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    saliency = torch.from_numpy(rng.beta(0.5, 3.0, (40, 30)).astype(np.float32))
    levels = (saliency.numpy() * 255).round().astype(np.uint8)
    difference = equalize_histogram(saliency).numpy() - cv2.equalizeHist(levels)
    assert np.abs(difference).max() <= 1


def test_equalisation_of_a_constant_map_is_the_quantised_map() -> None:
    assert torch.equal(equalize_histogram(torch.full((4, 5), 0.5)), torch.full((4, 5), 128.0))


def test_hints_take_about_six_percent_each() -> None:
    ramp = torch.linspace(0, 1, 100 * 100).reshape(100, 100)
    fg, bg = hints_from_saliency(ramp)
    assert_valid_hints(fg, bg, (100, 100))
    assert 0.04 < fg.mean() < 0.08 and 0.04 < bg.mean() < 0.08
    assert ramp[fg > 0].min() > ramp[bg > 0].max()


def test_hints_fall_back_to_the_extremes_when_equalisation_collapses() -> None:
    saliency = torch.zeros(20, 20)
    saliency[0, 0] = 1.0  # equalisation sends 399 pixels to 0 and one to 255: fine, no fallback
    fg, bg = hints_from_saliency(saliency)
    assert fg[0, 0] == 1 and fg.sum() == 1 and bg.sum() == 399
    fg, bg = hints_from_saliency(torch.full((20, 20), 0.3))  # constant: no pixel above 239.5
    assert_valid_hints(fg, bg, (20, 20))
    assert fg.sum() == bg.sum() == 24


def test_hint_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError):
        hints_from_saliency(torch.rand(8, 8), fg_threshold=10.0, bg_threshold=20.0)


def test_otsu_splits_a_bimodal_map_and_confident_regions_keep_away_from_it():
    from ddip.saliency import confident_regions, otsu_split, otsu_threshold

    saliency = torch.full((40, 40), 0.1)
    saliency[10:30, 10:30] = 0.9
    assert 0.1 < otsu_threshold(saliency) < 0.9
    fg, bg = confident_regions(otsu_split(torch.zeros(3, 40, 40), saliency), band=0.05)  # radius 2 px
    assert fg.sum() == 16 * 16 and fg[12:28, 12:28].all()
    assert bg[:8].all() and not bg[8:32, 8:32].any()


@pytest.mark.parametrize("kind", ["stripes_on_checker", "checker_on_stripes", "smooth_on_busy"])
def test_grabcut_from_the_saliency_finds_the_object_at_least_as_well_as_its_otsu_split(kind: str) -> None:
    from ddip.saliency import grabcut_split, otsu_split
    from ddip.tasks.seg import iou

    image, mask = composite(kind, 0)
    saliency, truth = saliency_map(image), torch.from_numpy(mask).float()
    split = grabcut_split(image, saliency)
    assert split.shape == mask.shape and split.dtype == torch.bool
    assert iou(split.float(), truth) >= max(0.8, iou(otsu_split(image, saliency).float(), truth) - 0.02)
    assert torch.equal(split, grabcut_split(image, saliency))  # seeded


@pytest.mark.parametrize("kind", ["stripes_on_checker", "checker_on_stripes"])  # smooth_on_busy: 0.66, colours shared
def test_grabcut_from_a_box_finds_an_object_inside_the_image(kind: str) -> None:
    from ddip.saliency import box_split
    from ddip.tasks.seg import iou

    image, mask = composite(kind, 0)
    saliency, truth = saliency_map(image), torch.from_numpy(mask).float()
    split = box_split(image, saliency)
    assert split.shape == mask.shape and split.dtype == torch.bool
    assert iou(split.float(), truth) >= 0.8
    assert torch.equal(split, box_split(image, saliency))  # seeded


def test_grabcut_from_a_box_of_a_uniform_image_falls_back_to_the_saliency_split() -> None:
    from ddip.saliency import box_split, otsu_split

    image = torch.full((3, 24, 24), 0.5)
    saliency = saliency_map(image)
    assert torch.equal(box_split(image, saliency), otsu_split(image, saliency))


def test_an_unknown_split_is_a_one_line_error() -> None:
    from ddip.errors import DdipError
    from ddip.tasks.seg import Segmentation

    with pytest.raises(DdipError, match="task.split='kmeans' is not one of otsu, grabcut"):
        Segmentation(split="kmeans")


def test_automatic_hints_keep_both_sides_where_grabcut_from_a_box_finds_no_object() -> None:
    # a low-contrast photo composite of the seg suite on which GrabCut from the box marked every pixel background
    # (the fit then stopped with "found no salient region")
    from ddip.cases import seg_cases
    from ddip.saliency import box_split
    from ddip.tasks.seg import Segmentation

    case = next(c for c in seg_cases("test", 64, 2) if c.name == "seg_low_contrast_1_monkey_on_library")
    image = case.images["image"]
    split = box_split(image, saliency_map(image))
    assert split.any() and not split.all()
    fg, bg, _ = Segmentation().auto_hints(image)
    assert fg.any() and bg.any() and not (fg * bg).any()


@pytest.mark.parametrize("source", ["split", "saliency"])
def test_the_warm_up_trimap_is_one_and_zero_on_the_hints_and_its_source_between_them(source: str) -> None:
    from ddip.saliency import box_split
    from ddip.tasks.seg import Segmentation

    image, _ = composite("stripes_on_checker", 0)
    task = Segmentation(trimap_source=source)
    maps = task.prepare(image)
    fg, bg, trimap = maps["fg_hint"] > 0.5, maps["bg_hint"] > 0.5, maps["trimap"]  # H×W each
    between = ~(fg | bg)
    assert between.any() and bool((trimap[fg] == 1).all()) and bool((trimap[bg] == 0).all())
    guess = box_split(image, saliency_map(image)).float() if source == "split" else saliency_map(image)
    assert torch.allclose(trimap[between], guess[between])
    unhinted = Segmentation(trimap_source=source, soft_trimap=False).prepare(image)["trimap"]
    assert bool((unhinted[between] == 0.5).all())


def test_an_unknown_trimap_source_is_a_one_line_error() -> None:
    from ddip.errors import DdipError
    from ddip.tasks.seg import Segmentation

    with pytest.raises(DdipError, match="task.trimap_source='motion' is not one of split, saliency"):
        Segmentation(trimap_source="motion")
