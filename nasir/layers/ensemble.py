"""Combining the logits of S co-trained networks (Zhao et al., "Towards Better Accuracy-efficiency
Trade-offs: Divide and Co-training", arXiv 2011.14660; official `model/splitnet.py`,
`SplitNet._get_ensemble_output`).

The official default is the mean of raw logits; `is_ensembled_after_softmax` averages softmax
probabilities instead and `is_max_ensemble` takes the elementwise maximum (of logits, or of
probabilities when both flags are set).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

EnsembleMode = Literal["mean", "softmax_mean", "max", "softmax_max"]
ENSEMBLE_MODES: tuple[str, ...] = ("mean", "softmax_mean", "max", "softmax_max")


def ensemble(*logits: Tensor, mode: EnsembleMode = "mean") -> Tensor:
    """Combine S tensors of shape (N, classes) into one, as SplitNet does at inference."""
    if not logits:
        raise ValueError("ensemble needs at least one tensor")
    if mode not in ENSEMBLE_MODES:
        raise ValueError(f"unknown ensemble mode {mode!r}; expected one of {ENSEMBLE_MODES}")
    stacked = torch.stack(logits, dim=0)
    if mode.startswith("softmax_"):
        stacked = torch.softmax(stacked, dim=-1)
    if mode.endswith("max"):
        return stacked.max(dim=0).values
    return stacked.mean(dim=0)


class Ensemble(nn.Module):
    """Module form of `ensemble`: forward(*logits) -> combined logits (or probabilities)."""

    def __init__(self, mode: EnsembleMode = "mean") -> None:
        super().__init__()
        if mode not in ENSEMBLE_MODES:
            raise ValueError(f"unknown ensemble mode {mode!r}; expected one of {ENSEMBLE_MODES}")
        self.mode = mode

    def forward(self, *logits: Tensor) -> Tensor:
        return ensemble(*logits, mode=self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
