"""NASNet's ScheduledDropPath (Zoph et al., "Learning Transferable Architectures for Scalable
Image Recognition", CVPR 2018, arXiv 1707.07012).

Follows TF-slim `nasnet_utils.NasNetABaseCell._apply_drop_path`, version v3: the drop
probability grows with the cell's depth, (cell + 1) / total_cells, and linearly with training
progress, min(1, step / total_steps). A whole sample's branch is dropped (mask shape (N,1,1,1))
and the survivors are scaled by 1/keep so the expectation is unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ScheduledDropPath(nn.Module):
    """Drop each sample's path with probability drop_prob * (cell+1)/total_cells * progress.

    `drop_prob` is 1 - `drop_path_keep_prob` of the TF-slim configs (0.4 for CIFAR, 0.3 for
    NASNet-A Large). `progress` is a float buffer in [0, 1], set by `set_progress`; keeping it
    a tensor lets a compiled graph follow the schedule without recompiling.
    """

    def __init__(self, drop_prob: float, cell_index: int = 0, total_cells: int = 1) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        if total_cells < 1:
            raise ValueError(f"total_cells must be a positive integer, got {total_cells}")
        if not 0 <= cell_index < total_cells:
            raise ValueError(f"cell_index must be in [0, {total_cells}), got {cell_index}")
        self.drop_prob = drop_prob
        self.cell_index = cell_index
        self.total_cells = total_cells
        self.layer_ratio = (cell_index + 1) / total_cells
        self.register_buffer("progress", torch.zeros(()))

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}, cell={self.cell_index + 1}/{self.total_cells}"

    def set_progress(self, progress: float) -> None:
        """Set the fraction of training done, clamped to [0, 1] (TF-slim's `tf.minimum(1, .)`)."""
        if math.isnan(progress):
            raise ValueError("progress must be a number, got nan")
        self.progress.fill_(min(max(progress, 0.0), 1.0))

    def drop_probability(self) -> Tensor:
        """The current per-sample drop probability, a scalar tensor."""
        return self.drop_prob * self.layer_ratio * self.progress

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_probability().to(x.dtype)
        noise = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        # floor(keep + U[0, 1)) is 1 with probability keep, as TF-slim's binary_tensor.
        mask = torch.floor(keep + noise)
        return x / keep * mask


def set_drop_path_progress(module: nn.Module, progress: float) -> int:
    """Set `progress` on every ScheduledDropPath inside `module`; return how many there are."""
    paths = [m for m in module.modules() if isinstance(m, ScheduledDropPath)]
    for path in paths:
        path.set_progress(progress)
    return len(paths)
