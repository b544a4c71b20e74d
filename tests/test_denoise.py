"""DIP denoising: a tiny run beats the noisy input; the ensemble's fits are independent and averaged; the
curriculum's faithful resets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ddip.curriculum import StageResets
from ddip.errors import DdipError
from ddip.run import build, build_component, compose_train, run
from ddip.synthetic import ellipse_mask
from ddip.tasks.denoise import Denoising

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
    metrics = run(compose_train(overrides + [f"data.image={noisy}", f"data.truth={{clean:{clean}}}"]), tmp_path / "run")
    assert metrics["chosen_by"] == "stopping rule"
    assert metrics["psnr_chosen"] > metrics["psnr_input"] + 3, metrics
    assert Image.open(tmp_path / "run" / "denoised.png").size == (64, 64)


def test_faithful_curriculum_redraws_the_input_and_resets_adam_at_stage_starts(tmp_path):
    noisy, _ = noisy_case(tmp_path)
    cfg = compose_train(["task=denoise", "scheduler=cosine", "scheduler.faithful=true", "scheduler.count=2", "steps=6", *SMALL_NET, f"data.image={noisy}"])
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    module = build(cfg, data, task)
    boundary = module.curriculum.boundaries[1]
    before = module.input_z_1.clone()
    loss = module(0, 0.0)["fit_1"].mean()
    loss.backward()
    module.optimizer.step()
    assert module.optimizer.state
    resets = StageResets()
    resets.on_train_batch_start(None, module, {"step": boundary - 1, "transform": 0}, 0)
    assert torch.equal(module.input_z_1, before) and module.optimizer.state  # inside a stage: nothing changes
    resets.on_train_batch_start(None, module, {"step": boundary, "transform": 0}, 0)
    assert not torch.equal(module.input_z_1, before) and not module.optimizer.state


def test_ensemble_output_is_the_mean_of_independent_fits():
    task = Denoising(ensemble=2)
    target = torch.rand(1, 3, 8, 8)
    first, second = torch.rand(1, 3, 8, 8, requires_grad=True), torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(task.compose({"fit_1": first, "fit_2": second}), (first + second) / 2)

    def first_gradient(other: torch.Tensor) -> torch.Tensor:
        loss = task.loss_terms({"fit_1": first, "fit_2": other}, target, {}, 0, 1)["reconstruction"]
        return torch.autograd.grad(loss, first)[0]

    # each fit follows its own Eq. 2: its gradient does not depend on the other fit's output
    torch.testing.assert_close(first_gradient(second), first_gradient(torch.zeros_like(second)))
    torch.testing.assert_close(first_gradient(second), (first - target).detach() / first.numel())


def test_ensemble_fits_start_from_different_weights_and_inputs(tmp_path):
    noisy, _ = noisy_case(tmp_path, size=32)
    cfg = compose_train(["task=denoise", "task.ensemble=2", "steps=2", *SMALL_NET, f"data.image={noisy}"])
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    module = build(cfg, data, task)
    outputs = module(0, 0.0)
    assert set(outputs) == {"fit_1", "fit_2"}
    assert not torch.equal(module.input_z_1, module.input_z_2)
    assert not torch.allclose(outputs["fit_1"], outputs["fit_2"])


@pytest.mark.parametrize("value", ["0", "1.5", "two"])
def test_ensemble_of_no_whole_number_of_fits_is_a_clear_error(tmp_path, value):
    noisy, _ = noisy_case(tmp_path, size=32)
    with pytest.raises(DdipError, match=f"task.ensemble={value}: need a whole number of fits"):
        run(compose_train(["task=denoise", f"task.ensemble={value}", "steps=2", "logger=none", f"data.image={noisy}"]), tmp_path / "run")
