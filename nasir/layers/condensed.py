"""CondenseNet's deployed layers, as the official ShichenLiu/CondenseNet layers.py
`CondenseConv` and `CondenseLinear` (Huang et al., CVPR 2018): a stored channel `index` picks
the inputs the condensed layer reads.

`index` is a long buffer (saved in the state dict, moved by `.to()`), so a converted
checkpoint's index loads like a weight. A fresh layer selects the first channels (wrapping
around when groups together read more channels than there are), where the official layers
start from zeros: the fresh layer is then a plain usable network. The forward pass has no
Python-level data dependence, so it traces and compiles (torch.compile) as it is.

Unlike the official `CondenseConv`, `CondensedConv` holds no BN and ReLU: in nasir they are
separate nodes before it, over all input channels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nasir.layers.functional import channel_shuffle


def _positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")


def default_index(select: int, in_channels: int) -> Tensor:
    """0, 1, ..., select-1, wrapped at in_channels: each group's run of at most in_channels
    entries then names distinct channels."""
    return torch.arange(select, dtype=torch.long) % in_channels


class CondensedConv(nn.Module):
    """index_select of `select` input channels -> 1x1 conv with `groups` groups -> shuffle.

    `index` (select,) lists group g's channels at [g*select/G, (g+1)*select/G); the conv emits
    its outputs group-major, and the shuffle (official `ShuffleLayer`) interleaves them back.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int, select: int) -> None:
        super().__init__()
        _positive(in_channels=in_channels, out_channels=out_channels, groups=groups,
                  select=select)
        if select % groups or out_channels % groups:
            raise ValueError(f"groups ({groups}) must divide select ({select}) and "
                             f"out_channels ({out_channels})")
        self.in_channels, self.groups = in_channels, groups
        self.register_buffer("index", default_index(select, in_channels))
        self.conv = nn.Conv2d(select, out_channels, 1, groups=groups, bias=False)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, select={self.index.numel()}"

    def forward(self, x: Tensor) -> Tensor:
        return channel_shuffle(self.conv(x.index_select(1, self.index)), self.groups)


class CondensedLinear(nn.Module):
    """index_select of `select` input features -> linear layer (official `CondenseLinear`)."""

    def __init__(self, in_features: int, out_features: int, select: int,
                 bias: bool = True) -> None:
        super().__init__()
        _positive(in_features=in_features, out_features=out_features, select=select)
        if select > in_features:
            raise ValueError(f"select ({select}) exceeds in_features ({in_features})")
        self.in_features = in_features
        self.register_buffer("index", default_index(select, in_features))
        self.linear = nn.Linear(select, out_features, bias=bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, select={self.index.numel()}"

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.index_select(1, self.index))
