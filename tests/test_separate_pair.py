"""Separation of two mixtures (Double-DIP Sec. 4.2, ``task=separate_pair``): the physics with learned weights, the
scalar generator that holds them, a tiny end-to-end run that beats the mixtures taken as the layers, and the
one-line errors for a wrong number of mixtures or mixtures of different sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ddip.errors import DdipError
from ddip.io import load_image
from ddip.metrics import psnr
from ddip.nets.scalar import Scalar
from ddip.run import build_component, compose_train, run

TRUE_ALPHAS = (0.3, 0.6)  # the weight of the ramp in each mixture
TINY_NET = ["backbone.channels=[8,16,16]", "backbone.skip_channels=[0,4,4]", "backbone.kernel_size=3"]


def two_mixtures(folder, size: int = 32) -> tuple[list, list]:
    """A smooth colour ramp and coloured stripes, mixed with the weights :data:`TRUE_ALPHAS`: the paths of the two
    mixtures and of the two layers."""
    y, x = np.mgrid[0:size, 0:size] / size
    ramp = np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * y, 0.8 - 0.5 * x], axis=-1)
    stripes = 0.5 + 0.4 * np.sin(2 * np.pi * (3 * x + 5 * y))[..., None] * np.array([1.0, 0.6, 0.2])
    arrays = {"ramp": ramp, "stripes": stripes} | {f"mixture{k}": a * ramp + (1 - a) * stripes for k, a in enumerate(TRUE_ALPHAS, 1)}
    for name, array in arrays.items():
        Image.fromarray((array * 255).round().astype(np.uint8)).save(folder / f"{name}.png")
    return [folder / "mixture1.png", folder / "mixture2.png"], [folder / "ramp.png", folder / "stripes.png"]


def test_each_mixture_weighs_the_layers_by_its_alpha_and_true_layers_cost_only_exclusion():
    task = build_component(compose_train(["task=separate_pair"]), "task")
    first, second = torch.rand(1, 3, 16, 16), torch.zeros(1, 3, 16, 16) + 0.3
    alphas = torch.tensor([0.2, 0.7])[None, :, None, None].expand(1, 2, 16, 16)
    layers = {"layer1": first, "layer2": second, "alphas": alphas}
    mixtures = task.compose(layers)
    torch.testing.assert_close(mixtures, torch.cat([0.2 * first + 0.8 * second, 0.7 * first + 0.3 * second], dim=1))
    terms = task.loss_terms(layers, mixtures, {}, 0, 70)
    assert float(terms["reconstruction"]) == 0.0 and float(terms["exclusion"]) < 1e-6
    assert float(terms["alpha_prior"]) == pytest.approx(0.5 * (0.3**2 + 0.2**2))  # the prior holds in the first 1/7
    assert float(task.loss_terms(layers, mixtures, {}, 10, 70)["alpha_prior"]) == 0.0


def test_the_scalar_generator_is_a_learned_constant_in_its_range():
    scalar = Scalar(in_channels=2, out_channels=2, low=0.05, high=0.95, init=0.5)
    out = scalar(torch.rand(1, 2, 8, 6))
    assert out.shape == (1, 2, 8, 6) and torch.allclose(out, torch.full_like(out, 0.5))
    (out[:, 0] * 100).sum().backward()
    assert scalar.logit.grad[0] > 0 and scalar.logit.grad[1] == 0
    with torch.no_grad():
        scalar.logit.fill_(50.0)
    assert float(scalar.value.detach().max()) <= 0.95
    with pytest.raises(DdipError, match="low < init < high"):
        Scalar(2, 1, low=0.5, high=0.9, init=0.3)


def test_a_tiny_run_separates_the_layers_and_learns_the_weights_order(tmp_path):
    """100 steps of tiny nets at 32 px: both layers closer to the truth than the mixtures (by > 3 dB), and the ramp
    weighing less in the first mixture than in the second, as it does."""
    mixtures, layers = two_mixtures(tmp_path)
    overrides = ["task=separate_pair", "steps=100", "optimizer.lr=0.01", "logger=none", "checkpoint=null", *TINY_NET]
    overrides += [f"data.images=[{mixtures[0]},{mixtures[1]}]", f"data.truth={{layer1:{layers[0]},layer2:{layers[1]}}}"]
    metrics = run(compose_train(overrides), tmp_path / "run")
    assert metrics["psnr_layers_chosen"] > metrics["psnr_layers_input"] + 3
    low, high = metrics["alphas_matched"]
    assert low < high and abs(low - TRUE_ALPHAS[0]) < 0.15 and abs(high - TRUE_ALPHAS[1]) < 0.15
    outputs = {name: load_image(tmp_path / "run" / f"{name}.png") for name in ("layer1", "layer2", "reconstruction1", "reconstruction2")}
    assert all(image.shape == (3, 32, 32) for image in outputs.values())
    assert psnr(outputs["reconstruction1"], load_image(mixtures[0])) > 25
    assert metrics["images"] == [str(path) for path in mixtures] and len(metrics["alphas"]) == 2


@pytest.mark.parametrize("count, message", [(1, "this task takes 2 images .*; 1 given"), (3, "this task takes 2 images .*; 3 given")])
def test_one_or_three_mixtures_are_a_one_line_error(tmp_path, count, message):
    mixtures, _ = two_mixtures(tmp_path)
    given = f"data.image={mixtures[0]}" if count == 1 else f"data.images=[{mixtures[0]},{mixtures[1]},{mixtures[0]}]"
    with pytest.raises(DdipError, match=message):
        run(compose_train(["task=separate_pair", "steps=1", "logger=none", given]), tmp_path / "run")


def test_mixtures_of_different_sizes_are_a_one_line_error(tmp_path):
    mixtures, _ = two_mixtures(tmp_path)
    Image.open(mixtures[1]).resize((32, 30)).save(tmp_path / "other.png")
    cfg = compose_train(["task=separate_pair", f"data.images=[{mixtures[0]},{tmp_path / 'other.png'}]"])
    with pytest.raises(DdipError, match=r"data.images\[1\]: .*other.png is \(30, 32\), .*mixture1.png is \(32, 32\)"):
        build_component(cfg, "data")


@pytest.mark.parametrize("value", ["[0.6,0.9]", "[0.1]", "[0.1,1.5]"])
def test_a_bad_weight_range_is_a_one_line_error(value):
    with pytest.raises(DdipError, match="task.alpha_range"):
        build_component(compose_train(["task=separate_pair", f"task.alpha_range={value}"]), "task")


def test_without_data_images_the_bundled_pair_of_mixtures_is_fitted():
    """``task=separate_pair`` runs with no arguments: its sample is two mixtures of the bundled zebra and a grating."""
    cfg = compose_train(["task=separate_pair"])
    data, task = build_component(cfg, "data"), build_component(cfg, "task")
    data.check_count(task.image_count)
    assert data.original.shape == (6, 160, 256) and len(data.paths) == 2
    assert all(path.endswith(("mixed_zebra1.png", "mixed_zebra2.png")) for path in data.paths)
