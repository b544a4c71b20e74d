"""Backbones: reference parameter counts, shapes, output range, input checks and gradient flow."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ddip.nets import SegNet, SkipUNet

DOUBLE_DIP_SKIP = (0, 0, 0, 4, 4)
FIVE_LEVELS = (8, 16, 32, 64, 128)

# The reference SegNet (width 64, 3→3, linear head) reports 29,444,745 parameters, 6 of which belong to a
# BatchNorm2d(3) it defines after the head but never applies; our SegNet has no such unused layer.
REFERENCE_SEGNET_PARAMS = 29_444_745
REFERENCE_SEGNET_UNUSED_BN_PARAMS = 2 * 3


def count_parameters(net: nn.Module) -> int:
    """Number of scalar parameters of the network."""
    return sum(p.numel() for p in net.parameters())


def tiny_unet(**overrides: object) -> SkipUNet:
    """A three-level SkipUNet small enough for fast forward passes."""
    config = {"channels": (4, 8, 8), "skip_channels": (2, 0, 2)} | overrides
    return SkipUNet(2, 3, **config)


def tiny_segnet(**overrides: object) -> SegNet:
    """A three-stage SegNet of width 4."""
    config = {"width": 4, "convs_per_stage": (2, 2, 3)} | overrides
    return SegNet(3, 2, **config)


@pytest.mark.parametrize(
    ("in_channels", "out_channels", "channels", "skip_channels", "kernel_size", "expected"),
    [
        (32, 3, (128,) * 5, (4,) * 5, 3, 2_217_831),
        (2, 3, (8, 16, 32), (0, 0, 0), 3, 35_179),
        (2, 1, (8, 16, 32), (0, 0, 0), 3, 35_161),
        (8, 3, FIVE_LEVELS, DOUBLE_DIP_SKIP, 3, 573_187),
        (8, 1, FIVE_LEVELS, DOUBLE_DIP_SKIP, 3, 573_169),
        (2, 3, FIVE_LEVELS, DOUBLE_DIP_SKIP, 5, 1_544_787),
    ],
)
def test_skip_unet_matches_reference_parameter_count(
    in_channels: int, out_channels: int, channels: tuple, skip_channels: tuple, kernel_size: int, expected: int
) -> None:
    net = SkipUNet(
        in_channels, out_channels, channels=channels, skip_channels=skip_channels, kernel_size=kernel_size
    )
    assert count_parameters(net) == expected


def test_segnet_matches_reference_parameter_count() -> None:
    net = SegNet(3, 3, output_activation="none")
    assert count_parameters(net) == REFERENCE_SEGNET_PARAMS - REFERENCE_SEGNET_UNUSED_BN_PARAMS


@pytest.mark.parametrize("upsample", ["bilinear", "nearest"])
def test_skip_unet_output_shape_and_range(upsample: str) -> None:
    net = tiny_unet(upsample=upsample)
    out = net(torch.randn(1, 2, 32, 64))
    assert out.shape == (1, 3, 32, 64)
    assert out.min() >= 0 and out.max() <= 1


def test_skip_unet_linear_head_is_unbounded() -> None:
    net = tiny_unet(output_activation="none", need_1x1_up=False, up_channels=(4, 4, 4))
    out = net(torch.randn(2, 2, 16, 24))
    assert out.shape == (2, 3, 16, 24)
    assert out.min() < 0


def test_skip_unet_size_requirements() -> None:
    assert tiny_unet().size_multiple == 8
    assert tiny_unet().min_size == 16
    assert tiny_unet(kernel_size=5).min_size == 24


def test_segnet_output_shape_and_range() -> None:
    net = SegNet(3, 2, width=8)
    out = net(torch.randn(1, 3, 32, 64))
    assert out.shape == (1, 2, 32, 64)
    assert out.min() >= 0 and out.max() <= 1
    assert net.size_multiple == net.min_size == 32


@pytest.mark.parametrize("size", [(20, 32), (8, 16)])
def test_skip_unet_rejects_bad_input_size(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="input size"):
        tiny_unet()(torch.randn(1, 2, *size))


def test_segnet_rejects_bad_input_size() -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        tiny_segnet()(torch.randn(1, 3, 12, 16))


@pytest.mark.parametrize(
    "overrides",
    [
        {"skip_channels": (4, 4)},
        {"up_channels": (4, 8)},
        {"channels": (4, 0, 8)},
        {"kernel_size": 4},
        {"upsample": "bicubic"},
        {"output_activation": "tanh"},
    ],
)
def test_skip_unet_rejects_bad_configuration(overrides: dict) -> None:
    with pytest.raises(ValueError):
        tiny_unet(**overrides)


def test_skip_unet_mismatched_lengths_message() -> None:
    with pytest.raises(ValueError, match="same length"):
        tiny_unet(skip_channels=(4, 4))


@pytest.mark.parametrize("overrides", [{"width": 0}, {"convs_per_stage": ()}, {"output_activation": "relu"}])
def test_segnet_rejects_bad_configuration(overrides: dict) -> None:
    with pytest.raises(ValueError):
        tiny_segnet(**overrides)


def assert_has_gradient(conv: nn.Conv2d) -> None:
    """The layer received a non-zero gradient from the last backward pass."""
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_skip_unet_gradients_reach_first_layer() -> None:
    net = tiny_unet()
    net(torch.randn(1, 2, 16, 16)).mean().backward()
    assert_has_gradient(net.body.deeper[0])
    assert_has_gradient(net.body.skip[0])


def test_segnet_gradients_reach_first_layer() -> None:
    net = tiny_segnet()
    net(torch.randn(1, 3, 16, 16)).mean().backward()
    assert_has_gradient(net.encoder[0][0])
