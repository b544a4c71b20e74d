"""The haze-lines airlight estimate (Berman, Treibitz, Avidan, "Air-light estimation using haze-lines", ICCP 2017),
measured as a rule of ddip's dehazing task and not kept (docs/results/dehazing.md): kept here for
``research/airlight_study.py``."""

from __future__ import annotations

import torch

from ddip.haze import MIN_AIRLIGHT, estimate_airlight


def colour_clusters(image: torch.Tensor, count: int = 1000, iterations: int = 10, sample: int = 20000) -> tuple[torch.Tensor, torch.Tensor]:
    """The colours of a 3×H×W image summarised by k-means (``count`` centres, Lloyd iterations on at most
    ``sample`` pixels, seeded so the same image always gives the same clusters): N×3 centres and their N
    shares of the pixels (empty clusters dropped)."""
    generator = torch.Generator().manual_seed(0)
    pixels = image.flatten(1).T.float()
    if pixels.shape[0] > sample:
        pixels = pixels[torch.randperm(pixels.shape[0], generator=generator)[:sample]]
    centres = pixels[torch.randperm(pixels.shape[0], generator=generator)[: min(count, pixels.shape[0])]]
    for _ in range(iterations):
        nearest = torch.cdist(pixels, centres).argmin(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, nearest, pixels)
        sizes = torch.bincount(nearest, minlength=centres.shape[0]).float()
        centres = torch.where(sizes[:, None] > 0, sums / sizes.clamp_min(1)[:, None], centres)
    sizes = torch.bincount(torch.cdist(pixels, centres).argmin(dim=1), minlength=centres.shape[0]).float()
    kept = sizes > 0
    return centres[kept], sizes[kept] / sizes.sum()


def haze_line_votes(
    points: torch.Tensor, weights: torch.Tensor, candidates: torch.Tensor, angles: int, tolerance: float, chunk: int = 256
) -> torch.Tensor:
    """Votes of 2-D colour clusters (N×2, shares N) for airlight candidates (M×2) in one pair of colour
    channels (Berman, Treibitz, Avidan, "Air-light estimation using haze-lines", ICCP 2017, Sec. 3).

    A haze-line is a line through ``A`` along which the pixels of one scene colour lie, ``I = A + t·(J − A)``.
    Through each candidate run ``angles`` lines; a cluster darker than the candidate in both channels is on a
    line when closer to it than ``2·tolerance·(1 + ‖A − I_n‖/√2)``; a line counts only with at least two
    clusters on it. The candidate's score is the sum over clusters on counting lines of their share times
    ``1 + 5·exp(−‖A − I_n‖)``. Returns M scores."""
    theta = torch.linspace(0.0, torch.pi, angles + 1)[:-1]
    directions = torch.stack([theta.cos(), theta.sin()], dim=1)  # K×2
    scores = []
    for block in candidates.split(chunk):
        offset = block[:, None, :] - points[None]  # M×N×2
        darker = (offset > 0).all(dim=-1)
        distance = offset.norm(dim=-1)
        across = (offset[..., None, 0] * directions[:, 1] - offset[..., None, 1] * directions[:, 0]).abs()  # M×N×K
        on_line = darker[..., None] & (across < (2 * tolerance * (1 + distance / 2**0.5))[..., None])
        counted = (on_line & (on_line.sum(dim=1, keepdim=True) >= 2)).any(dim=-1)
        scores.append((counted * weights * (1 + 5 * torch.exp(-distance))).sum(dim=1))
    return torch.cat(scores)


def estimate_airlight_haze_lines(
    image: torch.Tensor, spacing: float = 0.02, angles: int = 40, tolerance: float = 0.01, clusters: int = 500
) -> torch.Tensor:
    """The airlight colour (B×3) where the most haze-lines meet (Berman et al., ICCP 2017, Alg. 1): the image's
    colours are clustered (:func:`colour_clusters`), each pair of channels votes over a grid of candidates
    (:func:`haze_line_votes`, step ``spacing``), and the colour maximising the product of the three pairs'
    normalised votes is the estimate. Unlike the dark channel rule it needs no haze-opaque pixel: the lines
    are extrapolated to where they meet, which also fixes the airlight's hue from the whole image. A flat image
    (no two colours on a line) falls back to :func:`estimate_airlight`."""
    grid = torch.arange(0.0, 1.0 + spacing / 2, spacing)
    pairs = ((0, 1), (1, 2), (0, 2))
    candidates = torch.cartesian_prod(grid, grid)
    estimates = []
    for single in image:
        centres, weights = colour_clusters(single, clusters)
        votes = [haze_line_votes(centres[:, list(pair)], weights, candidates, angles, tolerance) for pair in pairs]
        top = max(float(v.max()) for v in votes)
        if top <= 0:  # fewer than two colours on any line (a flat image): nothing to extrapolate
            estimates.append(estimate_airlight(single[None])[0])
            continue
        rg, gb, rb = (v.reshape(len(grid), len(grid)) / top for v in votes)
        total = rg[:, :, None] * gb[None, :, :] * rb[:, None, :]  # R×G×B
        index = torch.unravel_index(total.argmax(), total.shape)
        estimates.append(torch.stack([grid[i] for i in index]))
    return torch.stack(estimates).clamp(MIN_AIRLIGHT, 1.0)
