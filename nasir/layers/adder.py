"""AdderNet layer: an ℓ1-distance "convolution" with the paper's own backward.

Chen et al., "AdderNet: Do We Really Need Multiplications in Deep Learning?" (CVPR 2020,
arXiv 1912.13200); official code ``huawei-noah/AdderNet`` ``adder.py``.

Forward (paper Eq. 2)::

    Y[n, o, i, j] = -Σ_{c,u,v} |X_pad[n, c, i·s + u, j·s + v] - W[o, c, u, v]|

Backward (paper §3.2 and §3.3, as in the official code)::

    ∂Y/∂W = X - W                 full-precision gradient, not sign(X - W)
    ∂Y/∂X = HardTanh(W - X)       = clamp(W - X, -1, 1)
    grad_W ← η·√numel(W) · grad_W / ‖grad_W‖₂      adaptive learning rate, η = 0.2

The official implementation unfolds the input and broadcasts it against every filter, which
materialises a (Cout, Cin·k², N·Hout·Wout) tensor (2.4 GB for a ResNet-20 16→16 3×3 layer at
batch 256) and two more in backward. Here the weight gradient is a single convolution
weight-gradient (see :func:`adder_weight_grad`) and only ``x`` and ``w`` are saved for backward.
The forward and the input gradient have two backends (see :mod:`nasir.layers.adder_ext`):

* ``"cpp"``: a C++ kernel built on first use, for CPU float32/float64. It computes both like a
  GEMM, on register tiles over packed im2col panels, one chunk of columns per thread.
* ``"torch"``: pure PyTorch, any device and dtype. It loops over the k² kernel offsets and over
  chunks of (batch, output channels), so the largest temporary holds at most
  ``chunk_elements`` elements.

``backend=None`` picks "cpp" where it applies and builds, else "torch" (``NASIR_ADDER``
overrides); both compute the same function up to floating-point summation order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from nasir.layers import adder_ext

__all__ = [
    "DEFAULT_CHUNK_ELEMENTS",
    "OFFICIAL_ETA",
    "Adder2d",
    "adaptive_grad_scale",
    "adder2d",
    "adder2d_backward",
    "adder2d_forward",
    "adder2d_unfold_reference",
    "adder_backend",
    "adder_input_grad",
    "adder_output_size",
    "adder_weight_grad",
]

OFFICIAL_ETA = 0.2
"""η of the adaptive learning rate; the official code writes it as ``/ 5`` (issue #17)."""

DEFAULT_CHUNK_ELEMENTS = 1 << 20
"""Upper bound on the elements of the largest temporary (4 MiB in fp32)."""


def adder_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Spatial output size, ``floor((size - kernel + 2·padding) / stride) + 1`` as in Conv2d."""
    return (size - kernel + 2 * padding) // stride + 1


def _output_hw(x: Tensor, w: Tensor, stride: int, padding: int) -> tuple[int, int]:
    """Validate the operands of an adder layer and return its output (height, width)."""
    if x.dim() != 4 or w.dim() != 4:
        raise ValueError(f"adder2d expects 4-d input and weight, got {x.dim()}-d and {w.dim()}-d")
    if x.dtype != w.dtype or x.device != w.device:
        raise ValueError(f"input is {x.dtype} on {x.device} but weight is {w.dtype} on {w.device}")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels but the weight expects {w.shape[1]}")
    if stride < 1 or padding < 0:
        raise ValueError(f"need stride >= 1 and padding >= 0, got {stride} and {padding}")
    h_out = adder_output_size(x.shape[2], w.shape[2], stride, padding)
    w_out = adder_output_size(x.shape[3], w.shape[3], stride, padding)
    if h_out < 1 or w_out < 1:
        raise ValueError(f"kernel {tuple(w.shape[2:])} does not fit input {tuple(x.shape[2:])}")
    return h_out, w_out


adder_backend = adder_ext.adder_backend


def _resolve_backend(x: Tensor, backend: str | None) -> str:
    """The backend to run on ``x``: the automatic choice for None, else ``backend`` checked."""
    if backend is None:
        return adder_ext.adder_backend(x)
    if backend not in adder_ext.BACKENDS:
        raise ValueError(f"unknown adder backend {backend!r}: expected one of cpp, torch")
    if backend == "cpp":
        if x.device.type != "cpu" or x.dtype not in adder_ext.KERNEL_DTYPES:
            raise ValueError(
                f"the cpp adder backend needs CPU float32/float64, got {x.dtype} on {x.device}"
            )
        if adder_ext.load_extension() is None:
            raise RuntimeError(
                f"the C++ adder kernel could not be built: {adder_ext.extension_error()}"
            )
    return backend


def _chunk_sizes(batch: int, out_channels: int, per_pair: int, budget: int) -> tuple[int, int]:
    """Batch and output-channel chunk sizes whose temporary (nb, ob, Cin, Hout, Wout) fits.

    ``per_pair`` is the size of one (sample, output channel) slab, Cin·Hout·Wout; it is the
    floor on the temporary, about the size of one input sample.
    """
    if out_channels * per_pair <= budget:
        return max(1, min(batch, budget // (out_channels * per_pair))), out_channels
    return 1, max(1, budget // per_pair)


def _tiles(
    x: Tensor, out_channels: int, hw_out: tuple[int, int], budget: int
) -> Iterator[tuple[slice, slice, Tensor]]:
    """Tile (batch, output channels) within budget, each tile with a scratch tensor.

    The scratch has shape (n, o, Cin, Hout, Wout) and is one buffer reused by every tile:
    allocating a fresh one per step lets the allocator's cached blocks pile up in RSS.
    """
    batch, in_channels = x.shape[:2]
    per_pair = in_channels * hw_out[0] * hw_out[1]
    nb, ob = _chunk_sizes(batch, out_channels, per_pair, budget)
    scratch = x.new_empty(nb * ob * per_pair)
    for n0 in range(0, batch, nb):
        n = min(nb, batch - n0)
        for o0 in range(0, out_channels, ob):
            o = min(ob, out_channels - o0)
            tile = scratch[: n * o * per_pair].view(n, o, in_channels, *hw_out)
            yield slice(n0, n0 + n), slice(o0, o0 + o), tile


def _window(x_pad: Tensor, u: int, v: int, stride: int, hw_out: tuple[int, int]) -> Tensor:
    """View of the padded input seen by kernel offset (u, v): shape (N, Cin, Hout, Wout)."""
    h_out, w_out = hw_out
    return x_pad[
        :, :, u : u + stride * (h_out - 1) + 1 : stride, v : v + stride * (w_out - 1) + 1 : stride
    ]


def _offsets(w: Tensor) -> Iterator[tuple[int, int]]:
    """All kernel offsets (u, v) of a weight of shape (Cout, Cin, kh, kw)."""
    for u in range(w.shape[2]):
        for v in range(w.shape[3]):
            yield u, v


@torch.no_grad()
def adder2d_forward(
    x: Tensor,
    w: Tensor,
    stride: int = 1,
    padding: int = 0,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    backend: str | None = None,
) -> Tensor:
    """Y = -Σ|X - W| (paper Eq. 2) without autograd, in bounded memory.

    torch backend: for each kernel offset (u, v) the input window X_pad[:, :, u::s, v::s] is
    compared with the (Cout, Cin) weight slice W[:, :, u, v]; summing over Cin and the k²
    offsets gives the ℓ1 distance. No temporary exceeds ``chunk_elements`` (or one input
    sample, if larger). The cpp backend ignores ``chunk_elements``.
    """
    hw_out = _output_hw(x, w, stride, padding)
    if _resolve_backend(x, backend) == "cpp":
        return adder_ext.load_extension().forward(x, w, stride, padding)
    x_pad = F.pad(x, (padding,) * 4)
    y = x.new_zeros(x.shape[0], w.shape[0], *hw_out)
    for nb, ob, scratch in _tiles(x, w.shape[0], hw_out, chunk_elements):
        y_tile = y[nb, ob]
        for u, v in _offsets(w):
            x_win = _window(x_pad[nb], u, v, stride, hw_out)[:, None]
            w_uv = w[ob, :, u, v][None, :, :, None, None]
            y_tile.sub_(torch.sub(x_win, w_uv, out=scratch).abs_().sum(2))
    return y


def adder_weight_grad(
    x: Tensor, w: Tensor, grad_out: Tensor, stride: int = 1, padding: int = 0
) -> Tensor:
    """Full-precision weight gradient Σ_{n,i,j} (X_pad - W)·grad_out (paper §3.2).

    Expanding the product, Σ X_pad·g is exactly a convolution's weight gradient and
    Σ W·g = W[o]·Σ g[o], so no (X - W) tensor is ever formed. Padded positions count as
    X = 0, as in the official unfold code.
    """
    conv_grad = torch.nn.grad.conv2d_weight(x, w.shape, grad_out, stride, padding)
    return conv_grad - w * grad_out.sum(dim=(0, 2, 3)).view(-1, 1, 1, 1)


def adaptive_grad_scale(grad_w: Tensor, eta: float | None = OFFICIAL_ETA) -> Tensor:
    """Adaptive learning rate α = η·√k / ‖ΔL(F)‖₂ over the whole layer (paper §3.3).

    k is the number of weights; the norm is clamped at 1e-12 like the official code.
    ``eta=None`` returns the gradient unscaled.
    """
    if eta is None:
        return grad_w
    norm = torch.linalg.vector_norm(grad_w).clamp(min=1e-12)
    return grad_w * (eta * math.sqrt(grad_w.numel()) / norm)


@torch.no_grad()
def adder_input_grad(
    x: Tensor,
    w: Tensor,
    grad_out: Tensor,
    stride: int = 1,
    padding: int = 0,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    backend: str | None = None,
) -> Tensor:
    """Input gradient Σ_o HardTanh(W - X_pad)·grad_out, folded back onto X (paper §3.2).

    The clipped difference keeps gradients from exploding through deep adder stacks; the
    torch backend accumulates it offset by offset into the padded input, then crops the
    padding.
    """
    if _resolve_backend(x, backend) == "cpp":
        return adder_ext.load_extension().input_grad(x, w, grad_out, stride, padding)
    hw_out = (grad_out.shape[2], grad_out.shape[3])
    x_pad = F.pad(x, (padding,) * 4)
    grad_pad = torch.zeros_like(x_pad)
    for nb, ob, scratch in _tiles(x, w.shape[0], hw_out, chunk_elements):
        g = grad_out[nb, ob][:, :, None]
        for u, v in _offsets(w):
            x_win = _window(x_pad[nb], u, v, stride, hw_out)[:, None]
            w_uv = w[ob, :, u, v][None, :, :, None, None]
            clipped = torch.sub(w_uv, x_win, out=scratch).clamp_(-1.0, 1.0).mul_(g)
            _window(grad_pad[nb], u, v, stride, hw_out).add_(clipped.sum(1))
    return grad_pad[:, :, padding : padding + x.shape[2], padding : padding + x.shape[3]]


def adder2d_backward(
    x: Tensor,
    w: Tensor,
    grad_out: Tensor,
    stride: int = 1,
    padding: int = 0,
    eta: float | None = OFFICIAL_ETA,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    backend: str | None = None,
) -> tuple[Tensor, Tensor]:
    """AdderNet's backward: (grad_x, grad_w) as in the paper and the official code.

    grad_w is the full-precision gradient rescaled by the adaptive learning rate
    (``eta=None`` disables the rescaling); grad_x uses HardTanh(W - X).
    """
    expected = (x.shape[0], w.shape[0], *_output_hw(x, w, stride, padding))
    if tuple(grad_out.shape) != expected:
        raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}, expected {expected}")
    grad_out = grad_out.contiguous()
    grad_x = adder_input_grad(x, w, grad_out, stride, padding, chunk_elements, backend)
    grad_w = adaptive_grad_scale(adder_weight_grad(x, w, grad_out, stride, padding), eta)
    return grad_x, grad_w


class _Adder2dFunction(torch.autograd.Function):
    """Autograd glue: chunked forward, AdderNet backward, saving only x and w."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        w: Tensor,
        stride: int,
        padding: int,
        eta: float | None,
        chunk_elements: int,
        backend: str | None,
    ) -> Tensor:
        ctx.save_for_backward(x, w)
        backend = _resolve_backend(x, backend)
        ctx.config = (stride, padding, eta, chunk_elements, backend)
        return adder2d_forward(x, w, stride, padding, chunk_elements, backend)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, w = ctx.saved_tensors
        stride, padding, eta, chunk_elements, backend = ctx.config
        grad_out = grad_out.contiguous()
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:  # skipped for a first layer fed with data
            grad_x = adder_input_grad(x, w, grad_out, stride, padding, chunk_elements, backend)
        if ctx.needs_input_grad[1]:
            grad_w = adaptive_grad_scale(adder_weight_grad(x, w, grad_out, stride, padding), eta)
        return (
            grad_x,
            grad_w,
            None,
            None,
            None,
            None,
            None,
        )


def adder2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    eta: float | None = OFFICIAL_ETA,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    backend: str | None = None,
) -> Tensor:
    """Functional adder layer: -Σ|X - W| plus an optional per-channel bias.

    Mixed dtypes are promoted like torch's elementwise ops (as the official ``W - X`` is,
    e.g. fp16 activations under autocast against fp32 weights). The bias is added outside
    the custom Function, so its gradient is the plain sum of grad_out, as in the official code.
    ``backend`` is "cpp", "torch" or None (automatic, see the module docstring).
    """
    dtype = torch.promote_types(x.dtype, weight.dtype)
    x, weight = x.to(dtype), weight.to(dtype)
    y = _Adder2dFunction.apply(x, weight, stride, padding, eta, chunk_elements, backend)
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y


class Adder2d(nn.Module):
    """AdderNet layer (Chen et al., CVPR 2020), a drop-in for a square, ungrouped Conv2d.

    The weight is initialised from N(0, 1) like the official ``adder2d``; the optional bias
    from U(0, 1). ``eta`` is the adaptive-learning-rate η (None disables the rescaling).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = False,
        eta: float | None = OFFICIAL_ETA,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.eta = eta
        self.chunk_elements = chunk_elements
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.weight = nn.Parameter(nn.init.normal_(torch.empty(shape)))
        self.bias = nn.Parameter(nn.init.uniform_(torch.empty(out_channels))) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return adder2d(
            x, self.weight, self.bias, self.stride, self.padding, self.eta, self.chunk_elements
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}, "
            f"eta={self.eta}"
        )


class _UnfoldAdderFunction(torch.autograd.Function):
    """The official unfold formulation, kept only as a reference and memory baseline.

    Columns are laid out like the official code: X_col (Cin·k², L·N), W_col (Cout, Cin·k²),
    and the forward and backward broadcast them into full (Cout, Cin·k², L·N) tensors.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, w_col: Tensor, x_col: Tensor, eta: float | None) -> Tensor:
        ctx.save_for_backward(w_col, x_col)
        ctx.eta = eta
        return -(w_col[:, :, None] - x_col[None]).abs().sum(1)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor, Tensor, None]:
        w_col, x_col = ctx.saved_tensors
        grad_w = ((x_col[None] - w_col[:, :, None]) * grad_out[:, None]).sum(2)
        grad_x = ((w_col[:, :, None] - x_col[None]).clamp(-1.0, 1.0) * grad_out[:, None]).sum(0)
        return adaptive_grad_scale(grad_w, ctx.eta), grad_x, None


def adder2d_unfold_reference(
    x: Tensor, w: Tensor, stride: int = 1, padding: int = 0, eta: float | None = OFFICIAL_ETA
) -> Tensor:
    """Straightforward unfold adder (the official algorithm), differentiable with its backward.

    Memory grows as Cout·Cin·k²·N·Hout·Wout; use it for tests and benchmarks only.
    """
    n = x.shape[0]
    h_out, w_out = _output_hw(x, w, stride, padding)
    x_col = F.unfold(x, w.shape[2:], padding=padding, stride=stride)  # (N, Cin·k², L)
    x_col = x_col.permute(1, 2, 0).reshape(x_col.shape[1], -1)  # (Cin·k², L·N)
    w_col = w.reshape(w.shape[0], -1)
    out = _UnfoldAdderFunction.apply(w_col, x_col, eta)  # (Cout, L·N)
    return out.view(w.shape[0], h_out, w_out, n).permute(3, 0, 1, 2).contiguous()
