"""DIP inpainting: the loss and the output choice see the known pixels only, the known pixels are kept, the mask is
data whose absence, size or emptiness is a one-line error, and a tiny run fills the holes of a synthetic image."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ddip.errors import DdipError
from ddip.io import load_image
from ddip.run import compose_train, run
from ddip.synthetic import ellipse_mask, pixel_mask
from ddip.tasks.inpaint import Inpainting

SMALL_NET = ["backbone.channels=[16,32,32,32,32]", "backbone.skip_channels=[4,4,4,4,4]"]


def holes_case(tmp_path, size: int = 48, missing: float = 0.5):
    """A piecewise-smooth colour image with ``missing`` of its pixels black: paths of (image, mask, clean)."""
    y, x = np.mgrid[0:size, 0:size] / size
    clean = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.3 + 0.5 * ellipse_mask(size, size)], axis=-1)
    known = pixel_mask((size, size), missing, seed=0).numpy()
    paths = tmp_path / "holes.png", tmp_path / "known.png", tmp_path / "clean.png"
    for path, array in zip(paths, (clean * known[..., None], known, clean)):
        Image.fromarray((array * 255).round().astype(np.uint8)).save(path)
    return paths


def data_overrides(image, mask, clean=None) -> list[str]:
    return [f"data.image={image}", f"data.mask={mask}"] + ([f"data.truth={{clean:{clean}}}"] if clean else [])


def test_only_the_known_pixels_count_in_the_loss_and_the_choice():
    task = Inpainting()
    image = torch.rand(1, 3, 8, 8)
    known = (torch.rand(8, 8) > 0.5).float()
    wrong_in_holes = {"inpainted": known * image + (1 - known) * (1 - image)}
    assert float(task.loss_terms(wrong_in_holes, image, {"mask": known[None]}, 0, 1)["reconstruction"]) == 0.0
    assert task.selection_score(wrong_in_holes, image, {"mask": known}) == float("inf")
    off = {"inpainted": (image + 0.1 * known).clamp(0, 1)}
    assert float(task.loss_terms(off, image, {"mask": known[None]}, 0, 1)["reconstruction"]) > 0


def test_the_output_keeps_the_known_pixels_unless_told_not_to():
    image, drawn = torch.rand(3, 8, 8), torch.rand(1, 3, 8, 8)
    known = (torch.rand(8, 8) > 0.5).float()
    kept = Inpainting().output({"inpainted": drawn}, image, known)
    torch.testing.assert_close(kept[0][:, known.bool()], image[:, known.bool()])
    torch.testing.assert_close(kept[0][:, ~known.bool()], drawn[0][:, ~known.bool()])
    torch.testing.assert_close(Inpainting(paste_known=False).output({"inpainted": drawn}, image, known), drawn)


def test_a_tiny_run_fills_the_holes(tmp_path):
    image, mask, clean = holes_case(tmp_path)
    overrides = ["task=inpaint", "steps=60", "logger=none", "callbacks.evaluation.every=20", "threads=1", *SMALL_NET]
    metrics = run(compose_train(overrides + data_overrides(image, mask, clean)), tmp_path / "run")
    assert metrics["psnr_chosen"] > metrics["psnr_input"] + 15, metrics
    inpainted, given, known = load_image(tmp_path / "run" / "inpainted.png"), load_image(image), load_image(mask)[0] > 0.5
    assert inpainted.shape == given.shape and torch.equal(inpainted[:, known], given[:, known])


def test_bad_masks_are_one_line_errors(tmp_path):
    image, mask, _ = holes_case(tmp_path, size=16)
    Image.new("L", (16, 12), 255).save(tmp_path / "small.png")
    Image.new("L", (16, 16), 0).save(tmp_path / "black.png")
    cases = {
        str(tmp_path / "none.png"): r"data.mask: image not found: .*none.png",
        str(tmp_path / "small.png"): r"data.mask: .*small.png is \(12, 16\), the image is \(16, 16\)",
        str(tmp_path / "black.png"): r"data.mask: .*black.png marks no pixel as known",
    }
    for given, message in cases.items():
        with pytest.raises(DdipError, match=message):
            run(compose_train(["task=inpaint", "steps=1", "logger=none", *data_overrides(image, given)]), tmp_path / "run")
    with pytest.raises(DdipError, match=r"this task needs data.mask: .*white = known"):
        run(compose_train(["task=inpaint", "steps=1", "logger=none", f"data.image={image}"]), tmp_path / "run")
    with pytest.raises(DdipError, match=r"data.mask is given, but this task does not read it"):
        run(compose_train(["task=denoise", "steps=1", "logger=none", *data_overrides(image, mask)]), tmp_path / "run")
