"""A grouped fully connected layer: `groups` independent linear maps over consecutive slices
of the input features, as a grouped convolution is over channels. It is how `fuse` runs the
classifiers of S ensemble members as one call (one batched matmul)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class GroupedLinear(nn.Module):
    """y[:, g*O/G:(g+1)*O/G] = x[:, g*I/G:(g+1)*I/G] @ W_g^T + b_g for each of G groups.

    `weight` is (out_features, in_features / groups), the members' weights stacked along the
    output dimension (the layout of a grouped conv's weight); `bias` is (out_features,).
    """

    def __init__(self, in_features: int, out_features: int, groups: int, bias: bool = True):
        super().__init__()
        if groups < 1 or in_features % groups or out_features % groups:
            raise ValueError(f"groups={groups} must divide in_features={in_features} and "
                             f"out_features={out_features}")
        self.in_features, self.out_features, self.groups = in_features, out_features, groups
        self.weight = nn.Parameter(torch.empty(out_features, in_features // groups))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's initialisation, per group."""
        fan_in = self.in_features // self.groups
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        g = self.groups
        xs = x.reshape(x.shape[0], g, self.in_features // g).transpose(0, 1)  # (G, N, I/G)
        ws = self.weight.reshape(g, self.out_features // g, -1)  # (G, O/G, I/G)
        y = torch.bmm(xs, ws.transpose(1, 2)).transpose(0, 1).reshape(x.shape[0], -1)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"groups={self.groups}, bias={self.bias is not None}")
