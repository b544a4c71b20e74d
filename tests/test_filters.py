"""Box filter and guided filter (He, Sun, Tang, TPAMI 2013): invariants, limits and OpenCV agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddip.filters import box_filter, guided_filter


def brute_force_box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The clipped-window mean, computed window by window."""
    height, width = x.shape[-2:]
    out = torch.empty_like(x)
    for i in range(height):
        for j in range(width):
            window = x[..., max(i - radius, 0) : i + radius + 1, max(j - radius, 0) : j + radius + 1]
            out[..., i, j] = window.mean(dim=(-2, -1))
    return out


def step_edge(height: int = 24, width: int = 32) -> torch.Tensor:
    """A 1×1×H×W image that is 0 left of the middle column and 1 right of it."""
    image = torch.zeros(1, 1, height, width)
    image[..., width // 2 :] = 1.0
    return image


@pytest.mark.parametrize("radius", [0, 1, 3, 40])
def test_box_filter_matches_brute_force(radius: int) -> None:
    x = torch.rand(2, 3, 11, 9, generator=torch.Generator().manual_seed(radius))
    assert torch.allclose(box_filter(x, radius), brute_force_box(x, radius), atol=1e-6)


def test_box_filter_radius_beyond_image_gives_the_mean() -> None:
    x = torch.rand(1, 2, 5, 7, generator=torch.Generator().manual_seed(0))
    expected = x.mean(dim=(-2, -1), keepdim=True).expand_as(x)
    assert torch.allclose(box_filter(x, 100), expected, atol=1e-6)


def test_box_filter_rejects_negative_radius() -> None:
    with pytest.raises(ValueError):
        box_filter(torch.zeros(1, 1, 3, 3), -1)


@pytest.mark.parametrize("guide_channels", [1, 3])
def test_constant_source_stays_constant(guide_channels: int) -> None:
    guide = torch.rand(1, guide_channels, 20, 16, generator=torch.Generator().manual_seed(1))
    src = torch.full((1, 2, 20, 16), 0.37)
    out = guided_filter(guide, src, radius=3, eps=1e-3)
    assert torch.allclose(out, src, atol=1e-5)


@pytest.mark.parametrize("guide_channels", [1, 3])
def test_large_eps_tends_to_the_box_filter(guide_channels: int) -> None:
    generator = torch.Generator().manual_seed(2)
    guide = torch.rand(1, guide_channels, 20, 16, generator=generator)
    src = torch.rand(1, 1, 20, 16, generator=generator)
    out = guided_filter(guide, src, radius=2, eps=1e6)
    assert torch.allclose(out, box_filter(box_filter(src, 2), 2), atol=1e-4)


def test_self_guided_with_tiny_eps_preserves_the_image() -> None:
    image = torch.rand(1, 1, 20, 16, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(guided_filter(image, image, radius=2, eps=1e-8), image, atol=1e-3)


@pytest.mark.parametrize("guide_channels", [1, 3])
def test_step_edge_is_preserved_better_than_by_the_box_filter(guide_channels: int) -> None:
    edge = step_edge()
    noisy = edge + 0.05 * torch.randn(edge.shape, generator=torch.Generator().manual_seed(4))
    guide = edge.expand(-1, guide_channels, -1, -1)
    guided_error = (guided_filter(guide, noisy, radius=4, eps=1e-3) - edge).abs().mean()
    box_error = (box_filter(noisy, 4) - edge).abs().mean()
    assert guided_error < 0.25 * box_error


@pytest.mark.parametrize("guide_channels", [1, 3])
def test_radius_larger_than_the_image(guide_channels: int) -> None:
    generator = torch.Generator().manual_seed(5)
    guide, src = torch.rand(1, guide_channels, 5, 7, generator=generator), torch.rand(1, 1, 5, 7, generator=generator)
    out = guided_filter(guide, src, radius=50, eps=1e-2)
    assert out.shape == src.shape and torch.isfinite(out).all()


@pytest.mark.parametrize(("guide_channels", "src_channels"), [(1, 1), (1, 3), (3, 1), (3, 3)])
def test_output_shape_and_dtype(guide_channels: int, src_channels: int) -> None:
    generator = torch.Generator().manual_seed(6)
    guide = torch.rand(2, guide_channels, 13, 10, generator=generator)
    src = torch.rand(2, src_channels, 13, 10, generator=generator)
    out = guided_filter(guide, src, radius=2, eps=1e-2)
    assert out.shape == src.shape and out.dtype == torch.float32


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        guided_filter(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9), radius=1, eps=1e-2)


@pytest.mark.parametrize("guide_channels", [1, 3])
@pytest.mark.parametrize(("radius", "eps"), [(2, 1e-2), (4, 1e-3)])
def test_matches_opencv_away_from_the_border(guide_channels: int, radius: int, eps: float) -> None:
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2, "ximgproc"):
        pytest.skip("cv2.ximgproc (opencv-contrib) is not installed")
    rng = np.random.default_rng(7)
    guide = rng.random((40, 30, guide_channels), dtype=np.float32)
    src = rng.random((40, 30), dtype=np.float32)
    expected = cv2.ximgproc.guidedFilter(guide if guide_channels == 3 else guide[..., 0], src, radius, eps)
    out = guided_filter(torch.from_numpy(guide).permute(2, 0, 1)[None], torch.from_numpy(src)[None, None], radius, eps)
    inner = slice(2 * radius, -2 * radius)
    assert np.abs(out[0, 0].numpy() - expected)[inner, inner].max() < 1e-3
