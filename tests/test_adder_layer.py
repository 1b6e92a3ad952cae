"""AdderNet layer (Chen et al., CVPR 2020, arXiv 1912.13200): forward, backward, memory.

The forward must equal the official unfold algorithm (paper Eq. 2); the backward must be the
paper's full-precision weight gradient and HardTanh input gradient (§3.2) with the adaptive
learning rate η·√k/‖ΔL‖₂ (§3.3); and the chunked implementation must keep its peak memory
near nn.Conv2d's instead of the unfold algorithm's (Cout, Cin·k², N·L) blow-up.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from nasir.layers.adder import (
    DEFAULT_CHUNK_ELEMENTS,
    Adder2d,
    adder2d,
    adder2d_backward,
    adder2d_forward,
    adder2d_unfold_reference,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
F64 = torch.float64

# (batch, in, out, height, width, kernel, stride, padding)
SHAPES = [
    (2, 3, 3, 5, 6, 3, 1, 1),
    (3, 2, 5, 8, 6, 3, 2, 0),
    (2, 4, 3, 6, 6, 1, 2, 1),
    (1, 3, 2, 5, 9, 3, 2, 1),
    (2, 2, 3, 5, 5, 1, 1, 0),
]


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    """These tests run thousands of tiny kernels, where OpenMP fork/join (and spinning on a
    busy machine) costs more than the work; the previous thread count is restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _operands(shape: tuple[int, ...], seed: int = 0) -> tuple[Tensor, Tensor]:
    n, cin, cout, h, w, k, _, _ = shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, dtype=F64, generator=gen)
    weight = torch.randn(cout, cin, k, k, dtype=F64, generator=gen)
    return x, weight


def _grads(y: Tensor, x: Tensor, w: Tensor, grad_out: Tensor) -> tuple[Tensor, ...]:
    return torch.autograd.grad(y, (x, w), grad_out)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_equals_official_unfold_reference(shape: tuple[int, ...], bias: bool) -> None:
    x, _ = _operands(shape)
    *_, k, stride, padding = shape
    layer = Adder2d(shape[1], shape[2], k, stride, padding, bias=bias).to(F64)
    expected = adder2d_unfold_reference(x, layer.weight, stride, padding)
    if bias:
        expected = expected + layer.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    cin=st.integers(1, 4),
    cout=st.integers(1, 4),
    h=st.integers(1, 8),
    w=st.integers(1, 8),
    k=st.sampled_from([1, 2, 3]),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    budget=st.sampled_from([1, 50, DEFAULT_CHUNK_ELEMENTS]),
    seed=st.integers(0, 2**16),
)
def test_forward_equals_unfold_reference_and_conv_shape_for_any_small_shape(
    n: int,
    cin: int,
    cout: int,
    h: int,
    w: int,
    k: int,
    stride: int,
    padding: int,
    budget: int,
    seed: int,
) -> None:
    if h + 2 * padding < k or w + 2 * padding < k:
        return
    x, weight = _operands((n, cin, cout, h, w, k, stride, padding), seed)
    y = adder2d_forward(x, weight, stride, padding, chunk_elements=budget)
    conv_shape = F.conv2d(x, weight, stride=stride, padding=padding).shape
    assert y.shape == conv_shape
    expected = adder2d_unfold_reference(x, weight, stride, padding)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_equal_official_unfold_backward(shape: tuple[int, ...]) -> None:
    x, w = _operands(shape)
    x.requires_grad_()
    w.requires_grad_()
    stride, padding = shape[6], shape[7]
    y = adder2d(x, w, None, stride, padding, chunk_elements=10)
    grad_out = torch.randn_like(y)
    expected = _grads(adder2d_unfold_reference(x, w, stride, padding), x, w, grad_out)
    for got, want in zip(_grads(y, x, w, grad_out), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def _huber(d: Tensor) -> Tensor:
    """huber₁(d) = ½d² for |d| ≤ 1, |d| - ½ beyond; its derivative is clamp(d, -1, 1)."""
    return torch.where(d.abs() <= 1, 0.5 * d * d, d.abs() - 0.5)


def _surrogate(x: Tensor, w: Tensor, stride: int, padding: int, wrt: str) -> Tensor:
    """A function whose true gradient wrt ``wrt`` is AdderNet's backward formula.

    ∂/∂W of -½Σ(X - W)² is X - W (full-precision gradient); ∂/∂X of -Σhuber₁(X - W) is
    clamp(W - X, -1, 1) (HardTanh). Padded positions are X = 0, as in the unfold code.
    """
    n, cout, k = x.shape[0], w.shape[0], w.shape[2]
    h_out = (x.shape[2] - k + 2 * padding) // stride + 1
    w_out = (x.shape[3] - k + 2 * padding) // stride + 1
    cols = F.unfold(x, k, padding=padding, stride=stride)  # (N, Cin·k², L)
    diff = cols[:, None] - w.reshape(1, cout, -1, 1)
    per_out = -0.5 * diff.square() if wrt == "w" else -_huber(diff)
    return per_out.sum(2).view(n, cout, h_out, w_out)


class _FormulaTwin(torch.autograd.Function):
    """Forward: the surrogate. Backward: the layer's own kernel, unscaled (eta=None)."""

    @staticmethod
    def forward(ctx, x, w, stride, padding, wrt, budget):
        ctx.save_for_backward(x, w)
        ctx.config = (stride, padding, wrt, budget)
        return _surrogate(x, w, stride, padding, wrt)

    @staticmethod
    def backward(ctx, grad_out):
        x, w = ctx.saved_tensors
        stride, padding, wrt, budget = ctx.config
        grad_x, grad_w = adder2d_backward(x, w, grad_out, stride, padding, None, budget)
        return (grad_x if wrt == "x" else None), (grad_w if wrt == "w" else None), *[None] * 4


@pytest.mark.parametrize("budget", [1, DEFAULT_CHUNK_ELEMENTS])
@pytest.mark.parametrize("wrt", ["x", "w"])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_kernel_is_the_true_gradient_of_its_surrogate(
    shape: tuple[int, ...], wrt: str, budget: int
) -> None:
    x, w = _operands(shape, seed=1)
    (x if wrt == "x" else w).requires_grad_()
    stride, padding = shape[6], shape[7]
    assert torch.autograd.gradcheck(
        lambda a, b: _FormulaTwin.apply(a, b, stride, padding, wrt, budget), (x, w)
    )


@pytest.mark.parametrize("eta", [0.2, 1.0])
def test_eta_rescales_weight_gradient_to_norm_eta_sqrt_numel(eta: float) -> None:
    shape = SHAPES[0]
    x, w = _operands(shape)
    w.requires_grad_()
    y = adder2d(x, w, None, shape[6], shape[7], eta=eta)
    grad_out = torch.randn_like(y)
    (scaled,) = torch.autograd.grad(y, w, grad_out)
    _, raw = adder2d_backward(x, w.detach(), grad_out, shape[6], shape[7], eta=None)
    assert scaled.norm().item() == pytest.approx(eta * math.sqrt(w.numel()), rel=1e-12)
    torch.testing.assert_close(scaled / scaled.norm(), raw / raw.norm())


def test_chunk_budget_does_not_change_forward_or_gradients() -> None:
    shape = (5, 3, 7, 9, 8, 3, 2, 1)
    x, w = _operands(shape)
    x.requires_grad_()
    w.requires_grad_()
    grad_out = None
    results = []
    for budget in (1, 37, 1000, 10**9):
        y = adder2d(x, w, None, shape[6], shape[7], chunk_elements=budget)
        grad_out = torch.randn_like(y) if grad_out is None else grad_out
        results.append((y, *_grads(y, x, w, grad_out)))
    for other in results[1:]:
        for got, want in zip(other, results[0], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_bias_gradient_is_sum_of_grad_out() -> None:
    layer = Adder2d(3, 4, 3, padding=1, bias=True).to(F64)
    y = layer(torch.randn(2, 3, 5, 5, dtype=F64))
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    torch.testing.assert_close(layer.bias.grad, grad_out.sum(dim=(0, 2, 3)))


def test_only_input_and_weight_are_saved_for_backward() -> None:
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    w = torch.randn(5, 3, 3, 3, requires_grad=True)
    saved: list[int] = []

    def pack(t: Tensor) -> Tensor:
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        adder2d(x, w, None, 1, 1)
    assert sorted(saved) == sorted([x.numel(), w.numel()])


def test_module_matches_official_parameters_and_repr() -> None:
    torch.manual_seed(0)
    layer = Adder2d(16, 32, 3, stride=2, padding=1)
    assert layer.weight.shape == (32, 16, 3, 3)
    assert layer.bias is None
    assert abs(layer.weight.std().item() - 1.0) < 0.1  # normal_ init, as in the official code
    assert Adder2d(16, 32, 3, bias=True).bias.shape == (32,)
    assert repr(layer) == (
        "Adder2d(16, 32, kernel_size=3, stride=2, padding=1, bias=False, eta=0.2)"
    )
    assert layer(torch.randn(2, 16, 9, 9)).shape == (2, 32, 5, 5)


def test_mixed_dtypes_promote_like_elementwise_ops() -> None:
    x, w = _operands(SHAPES[0])
    y = adder2d(x.float(), w, None, 1, 1)
    assert y.dtype == F64
    torch.testing.assert_close(y, adder2d(x.float().double(), w, None, 1, 1))


def test_mismatched_operands_raise_value_error() -> None:
    with pytest.raises(ValueError, match="channels"):
        adder2d(torch.randn(1, 3, 5, 5), torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="does not fit"):
        adder2d(torch.randn(1, 3, 2, 2), torch.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match="grad_out"):
        adder2d_backward(torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3), torch.randn(1, 2, 5, 5))


# One interpreter imports torch once, then forks a child per variant: each child's peak RSS
# growth during one forward+backward is its own (fresh processes would each pay the import).
_MEMORY_PROBE = """
import json, os, resource, sys, torch
from nasir.layers.adder import Adder2d, adder2d_unfold_reference
c, size = map(int, sys.argv[1:3])

def make_layer(variant):
    if variant == "conv":
        return torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
    if variant == "adder":
        return Adder2d(c, c, 3, padding=1)
    weight = torch.randn(c, c, 3, 3, requires_grad=True)
    return lambda x: adder2d_unfold_reference(x, weight, 1, 1)

def peak_growth(variant, n):
    torch.set_num_threads(1)
    layer = make_layer(variant)
    def step(x):
        y = layer(x)
        y.backward(torch.ones_like(y))
    step(torch.randn(1, c, size, size, requires_grad=True))
    x = torch.randn(n, c, size, size, requires_grad=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step(x)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024

for run in sys.argv[3:]:
    variant, n = run.split("@")
    pid = os.fork()
    if pid == 0:
        print(json.dumps([run, peak_growth(variant, int(n))]), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
"""


def _peak_rss_growth(runs: list[str], channels: int, size: int) -> dict[str, int]:
    """Peak RSS growth (bytes) of one forward+backward per ``variant@batch`` run."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
    args = [sys.executable, "-c", _MEMORY_PROBE, str(channels), str(size), *runs]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=True)
    return dict(json.loads(line) for line in out.stdout.strip().splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss units are Linux's")
def test_peak_memory_stays_near_conv2d_while_unfold_blows_up() -> None:
    # ResNet-20's 16→16 3×3 layer at 16×16. At batch 256 the input is 4 MB and an unchunked
    # per-offset temporary (N, Cout, Cin, H, W) would be 64 MB; at batch 64 the unfold
    # algorithm's (Cout, Cin·k², N·L) tensor is 151 MB, and the official code holds two.
    peak = _peak_rss_growth(["conv@256", "adder@256", "adder@64", "unfold@64"], 16, 16)
    assert peak["adder@256"] <= 2 * max(peak["conv@256"], 8 << 20), peak
    assert peak["unfold@64"] >= 100 << 20, peak
    assert peak["unfold@64"] >= 8 * peak["adder@64"], peak
