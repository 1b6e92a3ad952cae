"""Parameter-free modules with no torch.nn equivalent."""

from __future__ import annotations

from torch import Tensor, nn


class Zero(nn.Module):
    """The 'none' op of NAS cells: zeros shaped like the (strided) input."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, :: self.stride, :: self.stride] * 0.0

    def extra_repr(self) -> str:
        return f"stride={self.stride}"
