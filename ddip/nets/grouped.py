"""Several generators of one architecture run as a single network with grouped convolutions (the fast path).

Double-DIP fits two to three small hourglasses per step. Run one by one, a step is a long chain of tiny
kernels whose fixed cost dominates; stacked along the channel axis they become one network in which every
convolution has ``groups = G`` (member g sees only its own channels), every BatchNorm normalises G times as
many channels (per channel, so per member) and every activation, pool, unpool and upsampling is channel-wise
anyway. The result is the same function of the same weights, in 1/G of the kernel launches.

Members must have the same parameter shapes except the output convolution's output channels (a mask beside
RGB layers): the stacked output convolution is padded with zero filters, whose outputs are cut away, so
they never receive a gradient and stay zero under Adam.

A backbone opts in with the class attribute ``stackable = True``, which vouches that its forward mixes channels
only through its layers (concatenations through :class:`ChannelConcat`); its leaf layers must be of the types
listed here. Any other backbone runs unstacked (the plain path), so a new backbone is correct before it is fast.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn
from torch.nn.utils import skip_init

from ddip.nets.graphed import GraphedNetwork

CHANNEL_WISE = (nn.LeakyReLU, nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Upsample, nn.MaxPool2d, nn.MaxUnpool2d, nn.AvgPool2d, nn.Identity)


class ChannelConcat(nn.Module):
    """Concatenate feature maps along channels; with ``groups = G`` each input holds G equal blocks (one per
    stacked member) and block g of every input ends up in block g of the result."""

    def __init__(self, groups: int = 1) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.groups == 1:
            return torch.cat(list(tensors), dim=1)
        n, _, height, width = tensors[0].shape
        blocks = [t.reshape(n, self.groups, -1, height, width) for t in tensors]
        return torch.cat(blocks, dim=2).reshape(n, -1, height, width)


def groupable(members: Sequence[nn.Module]) -> bool:
    """True when the members can be stacked: one class that declares ``stackable``, built from known layers, with
    equal parameter shapes except the output filters."""
    if len({type(member) for member in members}) != 1 or not getattr(members[0], "stackable", False):
        return False
    if not all(_known_layer(layer) for layer in members[0].modules() if not any(True for _ in layer.children())):
        return False
    signatures = [_signature(member) for member in members]
    return all(signature == signatures[0] for signature in signatures)


class GroupedGenerators(nn.Module):
    """G same-architecture generators as one grouped network (see the module docstring).

    ``forward`` takes the G members' inputs (each N×C×H×W, same C) and returns their G outputs, equal to
    ``[member(x) for member, x in zip(members, inputs)]`` up to floating-point summation order.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not groupable(members):
            raise ValueError("generators can be grouped only if they share their architecture")
        self.out_channels = [_output_conv(member)[1].out_channels for member in members]
        self.size_multiple = getattr(members[0], "size_multiple", 1)
        self.min_size = getattr(members[0], "min_size", 1)
        self.network = _stack(members)

    def forward(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        stacked = self.network(torch.cat(list(inputs), dim=1))
        return [block[:, :channels] for block, channels in zip(stacked.chunk(len(inputs), dim=1), self.out_channels)]


def _output_conv(network: nn.Module) -> tuple[str, nn.Conv2d]:
    """The last registered convolution: the one that produces the output (followed only by activations)."""
    convs = [(name, module) for name, module in network.named_modules() if isinstance(module, nn.Conv2d)]
    if not convs:
        raise ValueError("a generator needs at least one convolution")
    return convs[-1]


def _signature(network: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of all parameters except the output convolution's (its output width may differ)."""
    head = _output_conv(network)[0]
    return [(name, tuple(p.shape)) for name, p in network.named_parameters() if not name.startswith(f"{head}.")]


def _stack(members: Sequence[nn.Module]) -> nn.Module:
    """A copy of the first member in which every layer is replaced by its G-member stacked version."""
    network = copy.deepcopy(members[0])
    layers = [dict(member.named_modules()) for member in members]
    for name, module in list(network.named_modules()):
        if not name:
            continue
        parent_name, _, attribute = name.rpartition(".")
        parent = network.get_submodule(parent_name)
        setattr(parent, attribute, _stack_layer(module, [layer[name] for layer in layers]))
    return network


@torch.no_grad()
def _stack_layer(module: nn.Module, members: list[nn.Module]) -> nn.Module:
    """The stacked version of one layer from its G members' copies."""
    groups = len(members)
    if isinstance(module, nn.Conv2d):
        return _stack_conv(members)
    if isinstance(module, nn.BatchNorm2d):
        stacked = copy.deepcopy(module)
        stacked.num_features *= groups
        for name in ("weight", "bias"):
            setattr(stacked, name, nn.Parameter(torch.cat([getattr(m, name) for m in members])))
        for name in ("running_mean", "running_var"):
            setattr(stacked, name, torch.cat([getattr(m, name) for m in members]))
        return stacked
    if isinstance(module, ChannelConcat):
        return ChannelConcat(groups)
    return module  # channel-wise layers and the containers of a stackable backbone


def _known_layer(layer: nn.Module) -> bool:
    """A leaf layer that stacking handles: an ungrouped convolution, BatchNorm, the concatenation, or a layer that
    acts on each channel alone."""
    if isinstance(layer, nn.Conv2d):
        return layer.groups == 1
    return isinstance(layer, (nn.BatchNorm2d, ChannelConcat, *CHANNEL_WISE))


def _stack_conv(members: list[nn.Conv2d]) -> nn.Conv2d:
    """A convolution with ``groups = G`` whose group g is member g (output filters zero-padded to the widest)."""
    first, groups = members[0], len(members)
    width = max(m.out_channels for m in members)
    stacked = skip_init(
        nn.Conv2d,
        first.in_channels * groups,
        width * groups,
        first.kernel_size,
        stride=first.stride,
        padding=first.padding,
        dilation=first.dilation,
        groups=groups,
        bias=first.bias is not None,
        padding_mode=first.padding_mode,
    )
    stacked.weight.zero_()
    for g, member in enumerate(members):
        stacked.weight[g * width : g * width + member.out_channels] = member.weight
    if first.bias is not None:
        stacked.bias.zero_()
        for g, member in enumerate(members):
            stacked.bias[g * width : g * width + member.out_channels] = member.bias
    return stacked


class GeneratorBank(nn.Module):
    """A task's named generators. With ``stack=True`` (the fast path) generators that share an architecture
    run as one :class:`GroupedGenerators`; with ``stack=False`` (the plain path) each runs on its own. With
    ``cuda_graphs=True`` (the fast path) each of those networks replays CUDA graphs of its forward and backward
    pass when it runs on a GPU (:mod:`ddip.nets.graphed`).

    ``forward`` maps ``{name: input}`` to ``{name: output}`` in the order the generators were given.
    """

    def __init__(self, generators: dict[str, nn.Module], stack: bool = True, cuda_graphs: bool = False) -> None:
        super().__init__()
        self.names = list(generators)
        members: list[list[str]] = []
        for name in self.names:
            group = next((g for g in members if stack and groupable([generators[g[0]], generators[name]])), None)
            if group is None:
                members.append([name])
            else:
                group.append(name)
        self.members = members
        self.networks = nn.ModuleList(
            GroupedGenerators([generators[n] for n in group]) if len(group) > 1 else generators[group[0]] for group in members
        )
        self.size_multiple = max(getattr(net, "size_multiple", 1) for net in generators.values())
        self.min_size = max(getattr(net, "min_size", 1) for net in generators.values())
        # a plain list: not part of the module tree or its state dict
        self.runners = [GraphedNetwork(net, _run) if cuda_graphs else partial(_run, net) for net in self.networks]

    def named_networks(self) -> dict[str, nn.Module]:
        """Each generator by name, as given (a bank built with ``stack=False`` and ``cuda_graphs=False``)."""
        if any(len(group) > 1 for group in self.members):
            raise ValueError("a stacked bank's generators are copies inside its grouped networks")
        return {group[0]: network for group, network in zip(self.members, self.networks)}

    def parameter_owners(self) -> list[tuple[nn.Parameter, list[str]]]:
        """Every parameter with the generators that own it: the names of a grouped network's members own
        equal consecutive blocks of its first dimension, in order (the stacking of :func:`_stack_layer`)."""
        return [(parameter, group) for group, network in zip(self.members, self.networks) for parameter in network.parameters()]

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        outputs: dict[str, torch.Tensor] = {}
        for group, run in zip(self.members, self.runners):
            outputs.update(zip(group, run(*(inputs[name] for name in group))))
        return {name: outputs[name] for name in self.names}


def _run(network: nn.Module, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The outputs of one of the bank's networks (a grouped network takes and returns one tensor per member)."""
    if isinstance(network, GroupedGenerators):
        return tuple(network(list(inputs)))
    return (network(*inputs),)
