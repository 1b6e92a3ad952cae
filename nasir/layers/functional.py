"""Stateless tensor ops that IR wiring nodes lower to (add, mul, concat, channel slices)."""

from __future__ import annotations

import torch
from torch import Tensor


def add(*xs: Tensor) -> Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def add_(out: Tensor, *xs: Tensor) -> Tensor:
    """`add` accumulating into `out` (the in-place planner guarantees nothing else reads it)."""
    for x in xs:
        out = out.add_(x)
    return out


def mul(x: Tensor, gate: Tensor) -> Tensor:
    return x * gate


def concat(*xs: Tensor) -> Tensor:
    return torch.cat(xs, dim=1)


def channel_slice(x: Tensor, start: int, stop: int) -> Tensor:
    return x[:, start:stop]


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """ShuffleNet's channel shuffle: view C as (groups, C/groups), transpose, flatten back."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)
