"""Filter grafting (Meng et al., "Filter Grafting for Deep Neural Networks", CVPR 2020).

Networks trained side by side exchange weights layer by layer: each layer's information is
measured as the entropy H of its weights (a 10-bin histogram of their values, natural log),
and a layer takes alpha = (A / pi) * arctan(c * (H_self - H_other)) + 0.5 of its own weights
and 1 - alpha of the other network's (A = 0.4, c = 500, as the paper and the official
code). Equal entropies blend half and half; grafting a network with itself changes nothing.
Layers are paired by their state-dict key, which nasir derives from the IR (same node, same
scope), so any spec can be grafted; the grafted tensors are every weight of two or more
dimensions (conv and linear layers). `invalid_filters` counts filters whose l1 norm is
below a threshold, the quantity the paper's figures report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

BINS = 10
A = 0.4
C = 500.0
INVALID_L1 = 1e-2


def weight_entropy(weight: Tensor, bins: int = BINS) -> float:
    """H of a layer's weights: a `bins`-bin histogram of their values, natural log."""
    values = weight.detach().flatten().double()
    if values.numel() == 0 or float(values.min()) == float(values.max()):
        return 0.0
    counts = torch.histc(values, bins=bins, min=float(values.min()), max=float(values.max()))
    p = counts[counts > 0] / values.numel()
    return float(-(p * p.log()).sum())


def graft_alpha(h_self: float, h_other: float, a: float = A, c: float = C) -> float:
    """alpha = (a / pi) * arctan(c * (h_self - h_other)) + 0.5."""
    return a / math.pi * math.atan(c * (h_self - h_other)) + 0.5


def graftable(state: Mapping[str, Tensor]) -> list[str]:
    """The keys grafting blends: floating-point weights of two or more dimensions."""
    return [k for k, v in state.items() if v.is_floating_point() and v.dim() >= 2]


@torch.no_grad()
def graft(own: Mapping[str, Tensor], other: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """`own` with every graftable layer blended with `other`'s (same keys and shapes)."""
    out = dict(own)
    for key in graftable(own):
        if key not in other or other[key].shape != own[key].shape:
            raise ValueError(f"cannot graft {key}: the other network has no such layer")
        alpha = graft_alpha(weight_entropy(own[key]), weight_entropy(other[key]))
        out[key] = alpha * own[key] + (1 - alpha) * other[key]
    return out


@dataclass(frozen=True)
class FilterCount:
    layer: str
    filters: int
    invalid: int


def invalid_filters(state: Mapping[str, Tensor], threshold: float = INVALID_L1
                    ) -> list[FilterCount]:
    """Per convolution (4-d weight), how many output filters have l1 norm below
    `threshold`."""
    rows = []
    for key, value in state.items():
        if value.is_floating_point() and value.dim() == 4:
            norms = value.detach().abs().flatten(1).sum(1)
            rows.append(FilterCount(key, int(norms.numel()), int((norms < threshold).sum())))
    return rows
