"""CUDA graphs of a generator's forward and backward pass (the fast path on a GPU).

A DIP generator is a chain of a few hundred small kernels; on a GPU its step is bound by the CPU that launches
them, not by the GPU that runs them (docs/results/speed.md). :func:`torch.cuda.make_graphed_callables` records the
forward and the backward pass once and replays each as one launch. The replay is the same kernels on the same
weights (updated in place by the optimiser), so the function and its gradients are unchanged.

A graph holds fixed input shapes and fixed parameter addresses, so :class:`GraphedNetwork` records one graph per
input shape (a dihedral transpose of a non-square image is a second shape) and records again if the
parameters moved (``module.to``). It runs eagerly on a CPU, under autocast (mixed precision), while the
network is in eval mode, and, with a warning, when recording fails (a forward pass that waits for the host
cannot be recorded).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn


class _Call(nn.Module):
    """``network(*inputs)`` as a module whose parameters are the network's (what the graph records); not
    registered anywhere, so the network's state dict is unchanged."""

    def __init__(self, network: nn.Module, call: Callable[..., object]) -> None:
        super().__init__()
        self.network, self.call = network, call

    def forward(self, *inputs: torch.Tensor) -> object:
        return self.call(self.network, *inputs)


class GraphedNetwork:
    """``call(network, *inputs)`` (a tuple of tensors), replayed from a CUDA graph per input shape when the inputs
    are on a GPU.

    The replay's outputs live in the graph's static memory, overwritten by the next replay, so they are
    returned as copies (one cheap kernel each).
    """

    def __init__(self, network: nn.Module, call: Callable[..., tuple[torch.Tensor, ...]]) -> None:
        self.network, self.call = network, call
        self.graphs: dict[tuple, Callable[..., object]] = {}
        self.parameters = list(network.parameters())
        self.weights: tuple[int, ...] = ()  # the weights' addresses when the graphs were recorded
        self.enabled = True  # false once recording failed: the network then runs eagerly

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.graphable(inputs):
            return self.call(self.network, *inputs)
        weights = tuple(p.data_ptr() for p in self.parameters)
        if weights != self.weights:  # moved (``module.to``): the recorded graphs would read freed memory
            self.weights, self.graphs = weights, {}
        key = tuple((tuple(x.shape), x.stride(), x.dtype) for x in inputs)
        if key not in self.graphs:
            try:
                self.graphs[key] = self.record(inputs)
            except RuntimeError as error:  # e.g. a backbone whose forward syncs with the host
                self.enabled = False
                warnings.warn(
                    f"CUDA graphs could not record {type(self.network).__name__} ({str(error).splitlines()[0]}); "
                    "it runs eagerly (module.cuda_graphs=false avoids the attempt)",
                    stacklevel=2,
                )
                return self.call(self.network, *inputs)
        return tuple(output.clone() for output in self.graphs[key](*inputs))

    def record(self, inputs: tuple[torch.Tensor, ...]) -> Callable[..., object]:
        """The graphed forward and backward pass for inputs shaped as ``inputs``."""
        with torch.enable_grad():
            samples = tuple(x.clone() for x in inputs)  # the graph's static inputs: never the caller's tensors
            return torch.cuda.make_graphed_callables(_Call(self.network, self.call), samples, allow_unused_input=True)

    def graphable(self, inputs: tuple[torch.Tensor, ...]) -> bool:
        return (
            self.enabled
            and all(x.is_cuda for x in inputs)
            and self.network.training
            and not torch.is_autocast_enabled("cuda")
            and not torch.cuda.is_current_stream_capturing()
        )
