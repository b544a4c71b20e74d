"""DIP super-resolution: the Lanczos downsampler of the loss, outputs at factor × the input's size, the
high-resolution ground truth and the factor checked as one-line errors, and a tiny run that beats its own input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ddip.errors import DdipError
from ddip.io import load_image
from ddip.run import compose_train, run
from ddip.synthetic import ellipse_mask, lanczos_downscale
from ddip.tasks.sr import SuperResolution, bicubic, downsample, lanczos_taps

SMALL_NET = ["backbone.channels=[16,32,32,32,32]", "backbone.skip_channels=[4,4,4,4,4]"]


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_the_downsampler_keeps_flat_images_flat_and_divides_the_size(factor):
    taps = lanczos_taps(factor)
    assert len(taps) == 4 * factor and float(taps.sum()) == pytest.approx(1.0) and torch.allclose(taps, taps.flip(0))
    flat = torch.full((1, 3, 5 * factor, 7 * factor), 0.3)
    torch.testing.assert_close(downsample(flat, taps), torch.full((1, 3, 5, 7), 0.3))


def test_the_downsampler_matches_lanczos_resampling_of_a_smooth_image():
    """Away from the borders, d(x) of a smooth image is PIL's Lanczos shrinking of it (both Lanczos windows)."""
    y, x = np.mgrid[0:64, 0:64] / 64
    smooth = torch.from_numpy(np.stack([0.5 + 0.3 * np.sin(3 * x + 2 * y)] * 3)).float()
    ours, pil = downsample(smooth[None], lanczos_taps(4))[0], lanczos_downscale(smooth, 4)
    assert float((ours - pil)[:, 2:-2, 2:-2].abs().max()) < 0.01


def test_the_output_is_factor_times_the_input():
    task = SuperResolution(factor=4)
    layers = {"upscaled": torch.rand(1, 3, 40, 24)}
    assert task.compose(layers).shape == (1, 3, 10, 6)
    assert bicubic(torch.rand(3, 10, 6), 4).shape == (3, 40, 24)


def edges_case(tmp_path, size: int = 32, factor: int = 2):
    """A piecewise-constant colour image (an ellipse over two halves) and its Lanczos-shrunk copy: paths of (small,
    large)."""
    x = np.mgrid[0:size, 0:size][1] / size
    ellipse = ellipse_mask(size, size)[..., None]
    large = np.where(ellipse, [0.9, 0.3, 0.2], np.where((x < 0.5)[..., None], [0.1, 0.4, 0.7], [0.8, 0.8, 0.3]))
    large_tensor = torch.from_numpy(large).permute(2, 0, 1).float()
    paths = tmp_path / "small.png", tmp_path / "large.png"
    for path, image in zip(paths, (lanczos_downscale(large_tensor, factor), large_tensor)):
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    return paths


def test_a_tiny_run_upscales_sharp_edges_better_than_bicubic(tmp_path):
    small, large = edges_case(tmp_path)
    # 400 steps: the default output average (weight 0.99) needs a few hundred steps to forget the first outputs
    overrides = ["task=sr", "task.factor=2", "steps=400", "logger=none", "callbacks.evaluation.every=20", "threads=1", *SMALL_NET]
    metrics = run(compose_train(overrides + [f"data.image={small}", f"data.truth={{clean:{large}}}"]), tmp_path / "run")
    assert load_image(tmp_path / "run" / "upscaled.png").shape == (3, 32, 32)
    assert metrics["psnr_chosen"] > metrics["psnr_bicubic"] + 0.5, metrics


def test_bad_factors_and_ground_truth_are_one_line_errors(tmp_path):
    small, large = edges_case(tmp_path)
    for factor in (1, 2.5):
        with pytest.raises(DdipError, match=rf"task.factor={factor} must be a whole number ≥ 2"):
            run(compose_train(["task=sr", f"task.factor={factor}", "logger=none", f"data.image={small}"]), tmp_path / "run")
    with pytest.raises(DdipError, match=r"data.truth.clean: .*large.png is \(32, 32\), the image is \(16, 16\) × 4"):
        run(compose_train(["task=sr", "logger=none", f"data.image={small}", f"data.truth={{clean:{large}}}"]), tmp_path / "run")
