"""Layer separation (Double-DIP, one mixture): the physics, the assignment of outputs to true layers, ground-truth
layers in the data module (bad ones are one-line errors), a tiny end-to-end run, and the classical baseline (a
total-variation structure–texture split)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import DATA
from PIL import Image

from ddip.cases import ellipse
from ddip.errors import DdipError
from ddip.io import load_image
from ddip.metrics import psnr
from ddip.run import compose_train, run
from ddip.tasks.separate import Separation
from ddip.unmix import structure_texture

SMALL_NET = ["backbone.channels=[16,32,32]", "backbone.skip_channels=[0,4,4]", "backbone.kernel_size=3"]


def mixture_case(tmp_path, size: int = 64):
    """A smooth colour ramp and a real texture mixed in equal parts: paths of (mixture, ramp, texture)."""
    y, x = np.mgrid[0:size, 0:size] / size
    ramp = np.stack([0.2 + 0.6 * x, 0.3 + 0.5 * y, 0.8 - 0.5 * x], axis=-1)
    texture = np.asarray(Image.open(DATA / "stripes.png").convert("RGB").resize((size, size))) / 255.0
    paths = [tmp_path / f"{name}.png" for name in ("mixture", "ramp", "texture")]
    for path, array in zip(paths, ((ramp + texture) / 2, ramp, texture)):
        Image.fromarray((array * 255).round().astype(np.uint8)).save(path)
    return paths


def test_mixture_is_the_mean_of_the_layers_and_true_layers_cost_only_exclusion():
    task = Separation()
    first, second = torch.rand(1, 3, 16, 16), torch.zeros(1, 3, 16, 16) + 0.3
    mixture = task.compose({"layer1": first, "layer2": second})
    torch.testing.assert_close(mixture, (first + second) / 2)
    terms = task.loss_terms({"layer1": first, "layer2": second}, mixture, {}, 0, 10)
    assert float(terms["reconstruction"]) == 0.0
    assert float(terms["exclusion"]) < 1e-6  # a flat layer has no edges in common with anything


def test_outputs_are_scored_under_the_better_assignment():
    task = Separation()
    truth = {"layer1": torch.rand(3, 16, 16), "layer2": torch.rand(3, 16, 16)}
    swapped = {"layer1": truth["layer2"][None], "layer2": truth["layer1"][None]}
    outputs, psnrs, was_swapped = task.matched(swapped, truth)
    assert was_swapped and torch.equal(outputs[0][0], truth["layer1"]) and min(psnrs) > 90
    assert task.ground_truth_metrics(swapped, truth, torch.rand(3, 16, 16))["psnr_layers"] > 90


def test_ground_truth_layers_of_another_size_are_a_one_line_error(tmp_path):
    mixture, ramp, _ = mixture_case(tmp_path)
    Image.open(ramp).resize((32, 32)).save(tmp_path / "small.png")
    cfg = compose_train(["task=separate", "logger=none", f"data.image={mixture}", f"data.truth={{layer1:{ramp},layer2:{tmp_path / 'small.png'}}}"])
    with pytest.raises(DdipError, match=r"data.truth.layer2: .*small.png is \(32, 32\), the image is \(64, 64\)"):
        run(cfg, tmp_path / "run")


@pytest.mark.parametrize("truth", ["{layer1:one.png}", "{layer2:one.png}"])
def test_layers_that_are_not_a_pair_are_a_one_line_error(tmp_path, truth):
    mixture, ramp, _ = mixture_case(tmp_path)
    cfg = compose_train(["task=separate", "logger=none", f"data.image={mixture}", f"data.truth={truth.replace('one.png', str(ramp))}"])
    with pytest.raises(DdipError, match=r"^data.truth gives one layer: give both"):
        run(cfg, tmp_path / "run")


def test_tiny_run_writes_both_layers_that_remix_into_the_mixture(tmp_path):
    """A few hundred steps of small nets cannot separate yet (docs/results/separation.md); the run must still
    give two layers at the input's size whose mean is the mixture, and score them against both true layers."""
    mixture, ramp, texture = mixture_case(tmp_path)
    overrides = ["task=separate", "steps=300", "logger=none", *SMALL_NET, f"data.image={mixture}", f"data.truth={{layer1:{ramp},layer2:{texture}}}"]
    metrics = run(compose_train(overrides), tmp_path / "run")
    layers = [load_image(tmp_path / "run" / f"{name}.png") for name in ("layer1", "layer2")]
    assert all(layer.shape == (3, 64, 64) for layer in layers)
    assert psnr((layers[0] + layers[1]) / 2, load_image(mixture)) > 25
    assert {"psnr_layers_chosen", "psnr_layers_final", "psnr_layers_input", "swapped_chosen"} <= metrics.keys()


def test_structure_texture_split_separates_a_cartoon_from_a_fine_grating():
    """A two-colour disk and a grating of period 5 px in equal parts: the TV cartoon and its residual, doubled about
    the mean, sum to twice the mixture (the task's layers) and beat the mixture taken as each layer by 4 dB; at a
    weight too small to remove the grating the split is no better than the mixture."""
    size = 64
    disk = torch.from_numpy(ellipse(size, (0.5, 0.5), (0.3, 0.3), 0.0)).float()
    cartoon = torch.stack([0.2 + 0.6 * disk, 0.7 - 0.4 * disk, 0.4 + 0.2 * disk])
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    grating = (0.5 + 0.3 * torch.sin(2 * math.pi * (x + y) / 5))[None] * torch.tensor([1.0, 0.8, 0.6])[:, None, None]
    mixture, truth = (cartoon + grating) / 2, {"layer1": cartoon, "layer2": grating}

    def score(first: torch.Tensor, second: torch.Tensor) -> float:
        return sum(Separation.matched({"layer1": first[None], "layer2": second[None]}, truth)[1]) / 2

    layers = structure_texture(mixture, weight=0.1)
    assert all(layer.shape == (3, size, size) for layer in layers)
    torch.testing.assert_close(layers[0] + layers[1], 2 * mixture)
    assert score(*layers) > score(mixture, mixture) + 4
    assert score(*structure_texture(mixture, weight=0.003)) < score(mixture, mixture) + 0.5
