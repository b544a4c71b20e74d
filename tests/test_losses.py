"""The loss terms of Double-DIP on hand-made tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ddip.losses import binarization_loss, exclusion_loss, expectile_loss, masked_l1_loss, reconstruction_loss


def test_reconstruction_is_the_mean_absolute_difference():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    b[..., 0, 0] = -1.5
    assert reconstruction_loss(a, b) == pytest.approx((0.5 * 15 + 1.5) / 16)


def test_masked_l1_ignores_unmasked_pixels():
    prediction, target = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    target[..., 2:] = 1.0  # wrong only on the right half
    weight = torch.zeros(1, 1, 4, 4)
    weight[..., :2] = 1.0
    assert masked_l1_loss(prediction, target, weight) == pytest.approx(0.0)
    assert masked_l1_loss(prediction, target, 1 - weight) == pytest.approx(1.0)


def test_exclusion_penalises_edges_at_the_same_places():
    edges = torch.zeros(1, 3, 32, 32)
    edges[..., :, 8::16] = 1.0
    elsewhere = torch.zeros(1, 3, 32, 32)
    elsewhere[..., :, 2::16] = 1.0
    assert exclusion_loss(edges, torch.zeros_like(edges)) < 1e-3
    assert exclusion_loss(edges, elsewhere) < 0.5 * exclusion_loss(edges, edges)


def test_exclusion_is_differentiable_and_symmetric():
    a = torch.rand(1, 3, 16, 16, requires_grad=True)
    b = torch.rand(1, 3, 16, 16)
    loss = exclusion_loss(a, b)
    loss.backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    assert loss.item() == pytest.approx(exclusion_loss(b, a.detach()).item(), rel=1e-5)


def test_binarization_prefers_binary_masks():
    binary = (torch.rand(1, 1, 8, 8) > 0.5).float()
    assert binarization_loss(binary) == pytest.approx(2.0, rel=1e-4)
    assert binarization_loss(torch.full((1, 1, 8, 8), 0.48)) > 10 * binarization_loss(binary)


def test_expectile_is_mse_at_one_half_and_weighs_undershoot_more_above_it():
    target = torch.zeros(1, 1, 4, 4)
    above, below = target + 0.1, target - 0.1
    assert torch.isclose(expectile_loss(above, target, 0.5), F.mse_loss(above, target))
    assert torch.isclose(expectile_loss(below, target, 0.9), 9 * expectile_loss(above, target, 0.9))
    # the constant that minimises it is the τ-expectile: above the mean of a two-valued target for τ > 0.5
    values = torch.tensor([0.0, 1.0])
    grid = torch.linspace(0, 1, 1001)
    best = grid[torch.stack([expectile_loss(g.expand(2), values, 0.9) for g in grid]).argmin()]
    assert abs(float(best) - 0.9) < 1e-3
