"""Loss terms of DIP and Double-DIP.

Double-DIP (Gandelsman, Shocher, Irani, CVPR 2019), Eq. (1): ``Loss = Loss_Reconst + α·Loss_Excl + β·Loss_Reg``.
All reductions are means, as in the reference code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``Loss_Reconst`` of Double-DIP Eq. (1): the mean L1 distance (the reference's choice for segmentation and
    separation)."""
    return F.l1_loss(prediction, target)


def masked_l1_loss(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """L1 restricted to a soft region: ``L1(w·a, w·b) / mean(|w|)`` (the reference's ``ExtendedL1``).

    Used for the hint terms of Double-DIP segmentation (Sec. 4.1): each layer must reproduce the image
    where its hint says it is present.
    """
    return F.l1_loss(weight * prediction, weight * target) / weight.abs().mean().clamp_min(EPS)


def _squashed_gradients(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Vertical and horizontal finite differences, squashed to (−1, 1) by ``2·sigmoid(g) − 1``."""
    grad_y = image[..., 1:, :] - image[..., :-1, :]
    grad_x = image[..., :, 1:] - image[..., :, :-1]
    return 2.0 * torch.sigmoid(grad_y) - 1.0, 2.0 * torch.sigmoid(grad_x) - 1.0


def _gradient_correlation(grad_a: torch.Tensor, grad_b: torch.Tensor) -> torch.Tensor:
    """Mean over all channel pairs (i, j) of ``mean(g_a,i² · g_b,j²)^(1/4)``."""
    products = grad_a.square().unsqueeze(2) * grad_b.square().unsqueeze(1)  # B × Ca × Cb × H × W
    return products.mean(dim=(0, 3, 4)).clamp_min(EPS**4).pow(0.25).mean()


def exclusion_loss(layer_a: torch.Tensor, layer_b: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """``Loss_Excl`` of Double-DIP Eq. (1) (after Zhang, Ng, Chen, CVPR 2018, Eq. 3): the two layers'
    gradients must not be large at the same places.

    Over ``levels`` scales (2× average pooling between them), the squashed gradients of the layers are
    correlated for every channel pair, along x and along y; the loss is the mean of both directions
    over pairs and scales. Like the Double-DIP reference, no per-scale normalisation factors are used.
    """
    total_y, total_x = layer_a.new_zeros(()), layer_a.new_zeros(())
    for level in range(levels):
        if level:
            if min(layer_a.shape[-2:]) < 4:
                levels = level
                break
            layer_a, layer_b = F.avg_pool2d(layer_a, 2), F.avg_pool2d(layer_b, 2)
        a_y, a_x = _squashed_gradients(layer_a)
        b_y, b_x = _squashed_gradients(layer_b)
        total_y = total_y + _gradient_correlation(a_y, b_y)
        total_x = total_x + _gradient_correlation(a_x, b_x)
    return (total_x + total_y) / (2.0 * levels)


def binarization_loss(mask: torch.Tensor) -> torch.Tensor:
    """``Loss_Reg`` of Double-DIP segmentation (Sec. 4.1): ``1 / mean(|m − 0.5|)``, smallest (2) for a
    binary mask and growing as the mask drifts towards 0.5 (the reference's ``GrayLoss``)."""
    return 1.0 / ((mask - 0.5).abs().mean() + EPS)


def temporal_loss(frames: torch.Tensor) -> torch.Tensor:
    """``mean|x_t − x_{t−1}|`` over a batch of n frames (n×C×H×W): how much neighbouring frames differ (the temporal
    consistency of a clip's masks, Double-DIP Sec. 4.5)."""
    return (frames[1:] - frames[:-1]).abs().mean()


def smoothness_loss(image: torch.Tensor, window: int = 5) -> torch.Tensor:
    """Deviation of the channel-mean image from its local ``window``² mean, as a mean square over the valid
    region (the Double-DIP reference's ``StdLoss``, the smoothness prior of the dehazing transmission and
    airlight maps, Sec. 4.3)."""
    gray = image.mean(dim=1, keepdim=True)
    margin = window // 2
    if min(gray.shape[-2:]) <= 2 * margin:
        return gray.new_zeros(())
    local_mean = F.avg_pool2d(gray, window, stride=1)
    return F.mse_loss(gray[..., margin:-margin, margin:-margin], local_mean)


def expectile_loss(prediction: torch.Tensor, target: torch.Tensor, expectile: float = 0.5) -> torch.Tensor:
    """Asymmetric squared error (expectile regression, Newey & Powell 1987): ``mean(w·(p − y)²)`` with
    ``w = 2τ`` where the prediction is below the target and ``2(1 − τ)`` above it; ``τ = 0.5`` is the MSE, and
    ``τ > 0.5`` lets a smooth prediction run along the upper envelope of a target that is a lower bound."""
    error = prediction - target
    weight = torch.where(error < 0, 2.0 * expectile, 2.0 * (1.0 - expectile))
    return (weight * error.square()).mean()
