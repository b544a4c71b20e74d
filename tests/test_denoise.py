"""DIP denoising: a tiny run beats the noisy input; averaging and the curriculum's faithful resets."""

from __future__ import annotations

import numpy as np
import torch
from conftest import compose_config
from PIL import Image

from ddip.run import build, build_component, run
from ddip.synthetic import ellipse_mask

SMALL_NET = ["backbone.channels=[16,32,32,32,32]", "backbone.skip_channels=[4,4,4,4,4]"]


def noisy_case(tmp_path, size: int = 64, sigma: float = 25 / 255):
    """A piecewise-smooth colour image plus Gaussian noise: (noisy path, clean path)."""
    y, x = np.mgrid[0:size, 0:size] / size
    clean = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * ellipse_mask(size, size)], axis=-1)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, sigma, clean.shape), 0, 1)
    paths = tmp_path / "noisy.png", tmp_path / "clean.png"
    for path, array in zip(paths, (noisy, clean)):
        Image.fromarray((array * 255).round().astype(np.uint8)).save(path)
    return paths


def test_tiny_denoise_run_raises_psnr_above_the_noisy_input(tmp_path):
    noisy, clean = noisy_case(tmp_path)
    overrides = ["task=denoise", "steps=250", "logger=none", "stopping.window=20", "stopping.patience=1000", *SMALL_NET]
    metrics = run(compose_config(overrides + [f"data.image={noisy}", f"data.clean={clean}"]), tmp_path / "run")
    assert metrics["chosen_by"] == "stopping rule"
    assert metrics["psnr_chosen"] > metrics["psnr_input"] + 3, metrics
    assert Image.open(tmp_path / "run" / "denoised.png").size == (64, 64)


def test_faithful_curriculum_redraws_the_input_and_resets_adam_at_stage_starts(tmp_path):
    noisy, _ = noisy_case(tmp_path)
    cfg = compose_config(["task=denoise", "scheduler=cosine", "scheduler.faithful=true", "scheduler.count=2", "steps=6", *SMALL_NET, f"data.image={noisy}"])
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    module = build(cfg, data, task, cfg.steps)
    boundary = module.curriculum.boundaries[1]
    before = module.input_image.clone()
    loss = module(0, 0.0)["denoised"].mean()
    loss.backward()
    module.optimizer.step()
    assert module.optimizer.state
    module.on_train_batch_start({}, boundary - 1)
    assert torch.equal(module.input_image, before) and module.optimizer.state  # inside a stage: nothing changes
    module.on_train_batch_start({}, boundary)
    assert not torch.equal(module.input_image, before) and not module.optimizer.state
