"""Classical baselines for layer separation.

Two mixtures of the same two layers, ``I_k = α_k·L1 + (1 − α_k)·L2``: independent
component analysis of the mixtures' gradients (Farid & Adelson, "Separating reflections and lighting using
independent components analysis", CVPR 1999), the pixelwise linear unmixing that Double-DIP's Sec. 4.2 improves on.

Image gradients are sparse, so of all linear combinations of the two mixtures the layers are the least Gaussian
ones. After whitening the two mixtures' gradients (every channel's x and y differences as samples), the
independent components are a rotation of them; the rotation that maximises the summed absolute excess kurtosis is
found by a search over angles (two components need nothing more than FastICA's one angle). The components fix the
mixing matrix up to each column's scale, and the model's rows summing to one (``α_k + (1 − α_k) = 1``) fix the
scales: the weights and the layers follow by inverting the 2×2 matrix.

One mixture (``task=separate``'s ``I = (y1 + y2)/2``): a structure–texture decomposition, ``I = u + v`` with the
cartoon ``u`` of Rudin, Osher & Fatemi's total-variation model ("Nonlinear total variation based noise removal
algorithms", Physica D 1992) and the texture ``v = I − u`` (the TV–L2 split of Aujol, Gilboa, Chan & Osher,
"Structure-texture image decomposition — modeling, algorithms, and parameter selection", IJCV 2006): what
separates a piecewise-smooth layer from an oscillating one without learning anything.
"""

from __future__ import annotations

import math

import torch


def gradients(image: torch.Tensor) -> torch.Tensor:
    """Every channel's x and y finite differences of a C×H×W image, flattened."""
    return torch.cat([image.diff(dim=-1).flatten(), image.diff(dim=-2).flatten()])


def ica_unmix(first: torch.Tensor, second: torch.Tensor, angles: int = 360) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """The two layers (C×H×W, clipped to [0, 1]) and the weights of the first layer in each mixture, from two
    mixtures (C×H×W) of them; which layer comes first is arbitrary."""
    samples = torch.stack([gradients(first), gradients(second)]).double()
    samples = samples - samples.mean(dim=1, keepdim=True)
    values, vectors = torch.linalg.eigh(samples @ samples.T / samples.shape[1])
    whiten = torch.diag(values.clamp_min(1e-12).rsqrt()) @ vectors.T
    white = whiten @ samples
    best, unmixing = -1.0, whiten
    for step in range(angles):
        angle = math.pi / 2 * step / angles
        rotation = torch.tensor([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]], dtype=white.dtype)
        sources = rotation @ white
        kurtosis = float((sources.pow(4).mean(dim=1) - 3).abs().sum())
        if kurtosis > best:
            best, unmixing = kurtosis, rotation @ whiten
    directions = torch.linalg.inv(unmixing)  # columns: the layers' directions in mixture space, up to scale
    scales = torch.linalg.solve(directions, torch.ones(2, dtype=directions.dtype))
    mixing = directions * scales  # rows sum to one: [[α1, 1 − α1], [α2, 1 − α2]]
    layers = torch.einsum("ij,jchw->ichw", torch.linalg.inv(mixing).float(), torch.stack([first, second]))
    return layers[0].clamp(0, 1), layers[1].clamp(0, 1), [float(value) for value in mixing[:, 0]]


TV_WEIGHT = 0.03  # chosen on the separation suite's tune split (docs/results/separation.md)


def structure_texture(image: torch.Tensor, weight: float = TV_WEIGHT) -> tuple[torch.Tensor, torch.Tensor]:
    """The two layers of ``I = (y1 + y2)/2`` (C×H×W in [0, 1], unclipped) from the structure–texture split
    ``I = u + v`` of one mixture: the cartoon ``u = argmin TV(u) + ‖u − I‖²/(2·weight)`` (ROF 1992, solved by
    Chambolle's projection, scikit-image ``denoise_tv_chambolle``, each channel on its own) and the texture
    ``v = I − u``. Each is doubled about the mixture's mean colour ``μ``, ``y1 = 2u − μ`` and ``y2 = 2v + μ``, so that
    the layers sum to ``2I`` as the task's do and each keeps the mixture's mean (the split of the mean between the
    layers is not observable). A larger ``weight`` moves more of the image into the texture layer."""
    from skimage.restoration import denoise_tv_chambolle

    pixels = image.permute(1, 2, 0).double().numpy()
    cartoon = torch.from_numpy(denoise_tv_chambolle(pixels, weight=weight, channel_axis=-1)).permute(2, 0, 1).to(image.dtype)
    mean = image.mean(dim=(1, 2), keepdim=True)
    return 2 * cartoon - mean, 2 * (image - cartoon) + mean
