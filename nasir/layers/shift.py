"""Spatial shift with zero fill (the `shift` op), as in TF-slim NASNet's factorized reduction:
`tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])[:, 1:, 1:, :]`."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


class Shift(nn.Module):
    """out[..., i, j] = x[..., i + pixels, j + pixels], zero where that falls outside x."""

    def __init__(self, pixels: int = 1) -> None:
        super().__init__()
        self.pixels = pixels

    def forward(self, x: Tensor) -> Tensor:
        k = self.pixels
        return F.pad(x, (0, k, 0, k))[:, :, k:, k:]

    def extra_repr(self) -> str:
        return f"pixels={self.pixels}"
