"""Double-DIP segmentation: the physics, the foreground rule, the refinement, and a real decomposition."""

from __future__ import annotations

import torch

from ddip.run import compose_train, run
from ddip.tasks.seg import Segmentation, iou


def test_composition_is_the_masked_mixture():
    task = Segmentation(hints="none")
    fg, bg = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    mask = (torch.rand(1, 1, 8, 8) > 0.5).float()
    image = task.compose({"foreground": fg, "background": bg, "mask": mask})
    assert torch.equal(image, torch.where(mask.bool(), fg, bg))


def centre_square(size=32):
    mask = torch.zeros(1, 1, size, size)
    mask[..., 8:24, 8:24] = 1.0
    return mask


def test_hint_free_foreground_is_the_layer_off_the_border():
    task = Segmentation(hints="none")
    fg, bg = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    layers, flipped = task.orient({"foreground": fg, "background": bg, "mask": 1 - centre_square()})
    assert flipped and torch.equal(layers["mask"], centre_square()) and torch.equal(layers["foreground"], bg)
    layers, flipped = task.orient({"foreground": fg, "background": bg, "mask": centre_square()})
    assert not flipped and torch.equal(layers["foreground"], fg)


def test_hinted_mask_is_never_flipped():
    task = Segmentation(hints="auto")
    _, flipped = task.orient({"foreground": torch.rand(1, 3, 32, 32), "background": torch.rand(1, 3, 32, 32), "mask": 1 - centre_square()})
    assert not flipped


def test_refinement_snaps_a_blurred_mask_to_the_image_edge():
    truth = centre_square(64)
    image = torch.cat([truth[0] * 0.8 + 0.1] * 3) + 0.02 * torch.randn(3, 64, 64)
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(truth, (4, 4, 4, 4), mode="replicate"), 9, stride=1)
    shifted = torch.roll(blurred, shifts=2, dims=-1)[0]
    task = Segmentation(hints="none", refine_radius=0.06, refine_eps=1e-3)
    refined = (task.refine(shifted, image) > 0.5).float()
    raw = (shifted > 0.5).float()
    assert iou(refined[0], truth[0, 0]) > iou(raw[0], truth[0, 0]) + 0.05


def test_iou():
    a = centre_square()[0, 0]
    assert iou(a, a) == 1.0 and iou(a, 1 - a) == 0.0


def test_segments_a_two_texture_composite(tmp_path, composite):
    """An ellipse of grass over zebra stripes, 64 px, automatic hints, default settings but 2000 of the recipe's
    2400 steps (its stages are fractions of ``steps``): a real IoU (a centred ellipse of the same radii scores
    0.71, the whole image 0.23). With 2000 steps seeds 0–3 give 0.995–0.998 (1000 steps: 0.787 with seed 0).

    At 3000 steps (the recipe's cap until 2026-12-07) this pair clears the bar on every CPU and seed measured (0.996–0.998); the 2000-step
    figures are from this project's 2-core CPU only. Grass over bookshelves, the test's
    pair until 2026-12-02, sits at it: 0.963 with seed 0 on the CPU of the composites table in
    docs/results/segmentation.md, but 0.855–0.926 over seeds 0–3 on an AVX2-only EPYC (the fit's float summation
    order differs between CPUs); ``research/composites.py`` measures it and the other pairs."""
    image, true_mask = composite
    cfg = compose_train(["logger=none", "steps=2000", f"data.image={image}", f"data.truth={{mask:{true_mask}}}"])
    metrics = run(cfg, tmp_path / "run")
    assert metrics["iou_chosen"] >= 0.9, {key: value for key, value in metrics.items() if "iou" in key}
