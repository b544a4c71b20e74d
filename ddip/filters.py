"""Edge-preserving smoothing: the box filter and the guided filter.

Guided filter: He, Sun, Tang, "Guided Image Filtering", ECCV 2010 / TPAMI 35(6) 2013. Equation numbers
below refer to the TPAMI version. Window sums use cumulative sums (the paper's O(1)-per-pixel box filter,
Sec. 3.5) and every window is clipped to the image, normalised by its true pixel count (the ``N`` of the
paper's Algorithm 1). Computation runs in float64 internally; the result has the dtype of ``src``.
"""

from __future__ import annotations

import torch


def _window_sum(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sum of ``x`` over the window ``[i − radius, i + radius]`` clipped to ``[0, n)`` along ``dim``."""
    n = x.shape[dim]
    zero = torch.zeros_like(x.narrow(dim, 0, 1))
    cumulative = torch.cat([zero, x.cumsum(dim)], dim)  # cumulative[k] = x[0] + … + x[k − 1]
    index = torch.arange(n, device=x.device)
    upper = (index + radius + 1).clamp(max=n)
    lower = (index - radius).clamp(min=0)
    return cumulative.index_select(dim, upper) - cumulative.index_select(dim, lower)


def _window_count(n: int, radius: int, device: torch.device) -> torch.Tensor:
    """Number of pixels of each clipped window along an axis of length ``n``."""
    index = torch.arange(n, device=device)
    return ((index + radius + 1).clamp(max=n) - (index - radius).clamp(min=0)).to(torch.float64)


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of ``x`` (B×C×H×W) over the (2r+1)² window around each pixel, clipped to the image.

    Separable cumulative sums make the cost independent of ``radius`` (He et al., Sec. 3.5); windows at
    the border are averaged over the pixels they actually contain, so a constant image stays constant.
    Any ``radius ≥ 0`` works, including radii larger than the image.
    """
    if radius < 0:
        raise ValueError(f"radius must be non-negative, got {radius}")
    height, width = x.shape[-2:]
    total = _window_sum(_window_sum(x.to(torch.float64), radius, -2), radius, -1)
    count = _window_count(height, radius, x.device)[:, None] * _window_count(width, radius, x.device)
    return (total / count).to(x.dtype)


def _gray_coefficients(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> tuple[torch.Tensor, ...]:
    """Per-window linear coefficients ``a_k``, ``b_k`` for a one-channel guide (Eqs. 5–6)."""
    mean_i, mean_p = box_filter(guide, radius), box_filter(src, radius)
    var_i = box_filter(guide * guide, radius) - mean_i * mean_i
    cov_ip = box_filter(guide * src, radius) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    return a, mean_p - a * mean_i


def _color_coefficients(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> tuple[torch.Tensor, ...]:
    """Per-window coefficients for a multi-channel guide (Eqs. 14–15): ``a_k = (Σ_k + εU)⁻¹ cov_k(I, p)``,
    ``b_k = p̄_k − a_kᵀ μ_k``, with one solve per pixel and all source channels as right-hand sides."""
    channels = guide.shape[1]
    mean_i, mean_p = box_filter(guide, radius), box_filter(src, radius)
    products = (guide[:, :, None] * guide[:, None, :]).flatten(1, 2)  # B × Cg² × H × W
    covariance = box_filter(products, radius).unflatten(1, (channels, channels))
    covariance = covariance - mean_i[:, :, None] * mean_i[:, None, :]
    cross = box_filter((guide[:, :, None] * src[:, None, :]).flatten(1, 2), radius).unflatten(1, (channels, -1))
    cross = cross - mean_i[:, :, None] * mean_p[:, None, :]  # B × Cg × Cs × H × W
    system = covariance.permute(0, 3, 4, 1, 2) + eps * torch.eye(channels, dtype=guide.dtype, device=guide.device)
    a = torch.linalg.solve(system, cross.permute(0, 3, 4, 1, 2)).permute(0, 3, 4, 1, 2)  # B × Cg × Cs × H × W
    return a, mean_p - (a * mean_i[:, :, None]).sum(1)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Guided filter of ``src`` (B×Cs×H×W) steered by ``guide`` (B×Cg×H×W), He et al. TPAMI 2013.

    Every window ω_k models the output as a linear function of the guide, ``q_i = a_kᵀ I_i + b_k``, and
    ``a_k, b_k`` are the least-squares fit of that model to ``src`` with ridge penalty ``eps·|a_k|²`` (Sec. 3.1).
    A gray guide (Cg = 1) uses the closed form of Eqs. (5)–(6), a colour guide (Cg > 1, e.g. 3) the covariance
    form of Eqs. (14)–(15). The output averages the coefficients of all windows covering a pixel (Eq. 8 /
    Eq. 16): ``q_i = ā_iᵀ I_i + b̄_i``. Each source channel is filtered independently.
    """
    if guide.dim() != 4 or src.dim() != 4 or guide.shape[0] != src.shape[0] or guide.shape[-2:] != src.shape[-2:]:
        raise ValueError(f"guide {tuple(guide.shape)} and src {tuple(src.shape)} must be B×C×H×W of one B, H, W")
    guide64, src64 = guide.to(torch.float64), src.to(torch.float64)
    if guide.shape[1] == 1:
        a, b = _gray_coefficients(guide64, src64, radius, eps)
        out = box_filter(a, radius) * guide64 + box_filter(b, radius)
    else:
        a, b = _color_coefficients(guide64, src64, radius, eps)
        mean_a = box_filter(a.flatten(1, 2), radius).unflatten(1, a.shape[1:3])
        out = (mean_a * guide64[:, :, None]).sum(1) + box_filter(b, radius)
    return out.to(src.dtype)
