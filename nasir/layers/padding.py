"""Convolution and pooling with a different padding on each side (e.g. TensorFlow "SAME" at
stride 2 on an even size pads one pixel more at the bottom/right than at the top/left).

Each pads explicitly, then runs PyTorch's op without padding; the pads are constants, so the
layers trace, compile and export without data-dependent branches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _torch_order(pad: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) to F.pad's (left, right, top, bottom)."""
    top, bottom, left, right = pad
    return (left, right, top, bottom)


class PaddedConv2d(nn.Conv2d):
    """nn.Conv2d with padding (top, bottom, left, right); state_dict keys stay weight/bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 pad: tuple[int, int, int, int] = (0, 0, 0, 0), dilation: int = 1,
                 groups: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0,
                         dilation=dilation, groups=groups, bias=bias)
        self.pad = tuple(pad)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pad={self.pad}"

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, _torch_order(self.pad)))


class PaddedMaxPool2d(nn.Module):
    """Max pooling with padding (top, bottom, left, right); padded pixels never win (-inf)."""

    def __init__(self, kernel_size: int, stride: int, pad: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.pad = kernel_size, stride, tuple(pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, pad={self.pad}"

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, _torch_order(self.pad), value=-torch.inf)
        return F.max_pool2d(x, self.kernel_size, self.stride)


class PaddedAvgPool2d(nn.Module):
    """Average pooling with padding (top, bottom, left, right).

    count_include_pad=True divides every window by kernel²; False divides by the number of
    real pixels in the window (TensorFlow "SAME" average pooling), as the window sum of x
    over the window sum of a ones-mask padded with zeros.
    """

    def __init__(self, kernel_size: int, stride: int, pad: tuple[int, int, int, int],
                 count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.pad = kernel_size, stride, tuple(pad)
        self.count_include_pad = count_include_pad

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, pad={self.pad}, "
                f"count_include_pad={self.count_include_pad}")

    def forward(self, x: Tensor) -> Tensor:
        pad = _torch_order(self.pad)
        mean = F.avg_pool2d(F.pad(x, pad), self.kernel_size, self.stride)
        if self.count_include_pad:
            return mean
        mask = F.pad(x.new_ones((1, 1, x.shape[-2], x.shape[-1])), pad)
        return mean / F.avg_pool2d(mask, self.kernel_size, self.stride)
