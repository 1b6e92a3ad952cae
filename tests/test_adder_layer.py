"""AdderNet layer (Chen et al., CVPR 2020, arXiv 1912.13200): forward, backward, memory.

The forward must equal the official unfold algorithm (paper Eq. 2); the backward must be the
paper's full-precision weight gradient and HardTanh input gradient (§3.2) with the adaptive
learning rate η·√k/‖ΔL‖₂ (§3.3); and the chunked implementation must keep its peak memory
near nn.Conv2d's instead of the unfold algorithm's (Cout, Cin·k², N·L) blow-up. Both backends
(the C++ kernel and pure PyTorch) are held to the same reference; tests of the C++ kernel are
skipped, with the build error as the reason, only where it cannot be built.
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

from nasir.layers import adder_ext
from nasir.layers.adder import (
    DEFAULT_CHUNK_ELEMENTS,
    Adder2d,
    adder2d,
    adder2d_backward,
    adder2d_forward,
    adder2d_unfold_reference,
    adder_backend,
    adder_input_grad,
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


def _require(backend: str) -> str:
    """Skip (with the build error as the reason) when the C++ kernel cannot be built."""
    if backend == "cpp" and adder_ext.load_extension() is None:
        pytest.skip(f"the C++ adder kernel could not be built: {adder_ext.extension_error()}")
    return backend


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
    y = adder2d_forward(x, weight, stride, padding, chunk_elements=budget, backend="torch")
    conv_shape = F.conv2d(x, weight, stride=stride, padding=padding).shape
    assert y.shape == conv_shape
    expected = adder2d_unfold_reference(x, weight, stride, padding)
    torch.testing.assert_close(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_equal_official_unfold_backward(shape: tuple[int, ...], backend: str) -> None:
    x, w = _operands(shape)
    x.requires_grad_()
    w.requires_grad_()
    stride, padding = shape[6], shape[7]
    y = adder2d(x, w, None, stride, padding, chunk_elements=10, backend=_require(backend))
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
    def forward(ctx, x, w, stride, padding, wrt, budget, backend):
        ctx.save_for_backward(x, w)
        ctx.config = (stride, padding, wrt, budget, backend)
        return _surrogate(x, w, stride, padding, wrt)

    @staticmethod
    def backward(ctx, grad_out):
        x, w = ctx.saved_tensors
        stride, padding, wrt, budget, backend = ctx.config
        grad_x, grad_w = adder2d_backward(x, w, grad_out, stride, padding, None, budget, backend)
        return (grad_x if wrt == "x" else None), (grad_w if wrt == "w" else None), *[None] * 5


@pytest.mark.parametrize(
    ("budget", "backend"), [(1, "torch"), (DEFAULT_CHUNK_ELEMENTS, "torch"), (0, "cpp")]
)
@pytest.mark.parametrize("wrt", ["x", "w"])
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_kernel_is_the_true_gradient_of_its_surrogate(
    shape: tuple[int, ...], wrt: str, budget: int, backend: str
) -> None:
    x, w = _operands(shape, seed=1)
    (x if wrt == "x" else w).requires_grad_()
    stride, padding = shape[6], shape[7]
    _require(backend)
    assert torch.autograd.gradcheck(
        lambda a, b: _FormulaTwin.apply(a, b, stride, padding, wrt, budget, backend), (x, w)
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
        y = adder2d(x, w, None, shape[6], shape[7], chunk_elements=budget, backend="torch")
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
from nasir.layers.adder import Adder2d, adder2d, adder2d_unfold_reference
c, size = map(int, sys.argv[1:3])

def make_layer(variant):
    if variant == "conv":
        return torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
    if variant == "adder":
        return Adder2d(c, c, 3, padding=1)
    if variant in ("cpp", "torch"):
        layer = Adder2d(c, c, 3, padding=1)
        return lambda x: adder2d(x, layer.weight, None, 1, 1, backend=variant)
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss units are Linux's")
def test_cpp_kernel_peak_memory_is_at_most_conv2ds() -> None:
    # Same layer; the C++ kernel's temporaries are one chunk of packed columns per thread.
    _require("cpp")
    peak = _peak_rss_growth(["conv@256", "cpp@256"], 16, 16)
    assert peak["cpp@256"] <= max(peak["conv@256"], 8 << 20), peak


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
    peak = _peak_rss_growth(["conv@256", "torch@256", "adder@64", "unfold@64"], 16, 16)
    assert peak["torch@256"] <= 2 * max(peak["conv@256"], 8 << 20), peak
    assert peak["unfold@64"] >= 100 << 20, peak
    assert peak["unfold@64"] >= 8 * peak["adder@64"], peak


# ---- the C++ kernel (nasir/layers/_adder_kernel.cpp) against the PyTorch path and reference

# (batch, in, out, height, width, kernel h, kernel w, stride, padding): batch 1, odd sizes,
# stride 2, padding 0/1, 1x1, non-square kernels, channel counts off the register tiles.
CPP_SHAPES = [
    (1, 3, 5, 7, 9, 3, 3, 1, 1),
    (2, 5, 9, 8, 8, 3, 3, 2, 1),
    (3, 4, 3, 6, 5, 1, 1, 2, 0),
    (1, 16, 17, 11, 10, 3, 3, 2, 0),
    (2, 7, 13, 9, 9, 3, 3, 1, 0),
    (2, 3, 4, 6, 7, 3, 1, 1, 1),
    (1, 33, 40, 5, 5, 3, 3, 1, 1),
]


def _max_rel_error(got: Tensor, want: Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max().clamp(min=1e-30)).item()


@pytest.mark.parametrize("isa", [0, 1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", CPP_SHAPES)
def test_cpp_kernel_equals_torch_path_and_unfold_reference(
    shape: tuple[int, ...], dtype: torch.dtype, isa: int
) -> None:
    _require("cpp")
    ext = adder_ext.load_extension()
    if isa > ext.best_isa():
        pytest.skip(f"this CPU lacks ISA level {isa} (0 = SSE2, 1 = AVX2, 2 = AVX-512)")
    n, cin, cout, h, w, kh, kw, stride, padding = shape
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(n, cin, h, w, dtype=F64, generator=gen)
    weight = torch.randn(cout, cin, kh, kw, dtype=F64, generator=gen)
    x_ref = x.clone().requires_grad_()
    reference = adder2d_unfold_reference(x_ref, weight, stride, padding, eta=None)
    grad_out = torch.randn(reference.shape, dtype=F64, generator=gen)
    (grad_x_ref,) = torch.autograd.grad(reference, x_ref, grad_out)
    xd, wd, gd = x.to(dtype), weight.to(dtype), grad_out.to(dtype)
    y = ext.forward(xd, wd, stride, padding, isa)
    grad_x = ext.input_grad(xd, wd, gd, stride, padding, isa)
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    assert y.dtype == dtype and grad_x.dtype == dtype
    assert _max_rel_error(y.double(), reference.detach()) < tol
    assert _max_rel_error(grad_x.double(), grad_x_ref) < tol
    y_torch = adder2d_forward(xd, wd, stride, padding, backend="torch")
    grad_x_torch = adder_input_grad(xd, wd, gd, stride, padding, backend="torch")
    assert _max_rel_error(y, y_torch) < tol
    assert _max_rel_error(grad_x, grad_x_torch) < tol


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpp_backend_trains_like_torch_backend(dtype: torch.dtype) -> None:
    """End to end through autograd: output, input and (eta-scaled) weight gradients."""
    _require("cpp")
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(3, 16, 12, 12, dtype=dtype, generator=gen)
    w = torch.randn(16, 16, 3, 3, dtype=dtype, generator=gen)
    bias = torch.rand(16, dtype=dtype, generator=gen)
    grad_out = torch.randn(3, 16, 6, 6, dtype=dtype, generator=gen)
    results = {}
    for backend in ("torch", "cpp"):
        xb, wb, bb = (t.clone().requires_grad_() for t in (x, w, bias))
        y = adder2d(xb, wb, bb, stride=2, padding=1, backend=backend)
        y.backward(grad_out)
        results[backend] = (y, xb.grad, wb.grad, bb.grad)
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    for got, want in zip(results["cpp"], results["torch"], strict=True):
        assert _max_rel_error(got.detach(), want.detach()) < tol


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3),
    cin=st.integers(1, 6),
    cout=st.integers(1, 10),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    k=st.sampled_from([1, 2, 3]),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    seed=st.integers(0, 2**16),
)
def test_cpp_kernel_equals_torch_path_for_any_small_shape(
    n: int, cin: int, cout: int, h: int, w: int, k: int, stride: int, padding: int, seed: int
) -> None:
    _require("cpp")
    if h + 2 * padding < k or w + 2 * padding < k:
        return
    x, weight = _operands((n, cin, cout, h, w, k, stride, padding), seed)
    y = adder2d_forward(x, weight, stride, padding, backend="cpp")
    torch.testing.assert_close(y, adder2d_forward(x, weight, stride, padding, backend="torch"))
    grad_out = torch.randn_like(y)
    torch.testing.assert_close(
        adder_input_grad(x, weight, grad_out, stride, padding, backend="cpp"),
        adder_input_grad(x, weight, grad_out, stride, padding, backend="torch"),
    )


def test_cpp_kernel_is_the_same_on_several_threads() -> None:
    """Batch 1 on 2 threads splits the input gradient by channel groups; results must match."""
    _require("cpp")
    x, w = _operands((1, 5, 6, 9, 9, 3, 1, 1))
    grad_out = torch.randn(1, 6, 9, 9, dtype=F64)
    single = adder2d_forward(x, w, 1, 1), adder_input_grad(x, w, grad_out, 1, 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        multi = adder2d_forward(x, w, 1, 1), adder_input_grad(x, w, grad_out, 1, 1)
    finally:
        torch.set_num_threads(threads)
    for got, want in zip(multi, single, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)


def test_backend_choice_follows_env_dtype_and_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASIR_ADDER", "torch")
    assert adder_backend() == "torch"
    monkeypatch.setenv("NASIR_ADDER", "fast")
    with pytest.raises(ValueError, match="NASIR_ADDER"):
        adder_backend()
    monkeypatch.setenv("NASIR_ADDER", "auto")
    assert adder_backend(torch.zeros(1, dtype=torch.float16)) == "torch"
    assert adder_backend(torch.zeros(1, device="meta")) == "torch"
    with pytest.raises(ValueError, match="backend"):
        adder2d(torch.randn(1, 2, 4, 4), torch.randn(2, 2, 3, 3), backend="fast")
    with pytest.raises(ValueError, match="float32/float64"):
        adder2d(torch.randn(1, 2, 4, 4).half(), torch.randn(2, 2, 3, 3).half(), backend="cpp")


def test_failed_build_falls_back_to_torch_visibly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adder_ext, "_state", {"error": "RuntimeError: no compiler (test)"})
    monkeypatch.delenv("NASIR_ADDER", raising=False)
    assert adder_backend() == "torch"
    assert adder_ext.extension_error() == "RuntimeError: no compiler (test)"
    x, w = _operands(SHAPES[0])
    torch.testing.assert_close(adder2d(x, w, None, 1, 1), adder2d_unfold_reference(x, w, 1, 1))
    with pytest.raises(RuntimeError, match="no compiler"):
        adder2d(x, w, None, 1, 1, backend="cpp")
    monkeypatch.setenv("NASIR_ADDER", "cpp")
    with pytest.raises(RuntimeError, match=r"NASIR_ADDER=cpp .* no compiler"):
        adder_backend()


def test_importing_nasir_does_not_build_the_kernel() -> None:
    code = (
        "import nasir, nasir.layers.adder\n"
        "from nasir.layers import adder_ext\n"
        "print(sorted(adder_ext._state))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /bin/false as compiler")
def test_unbuildable_kernel_falls_back_to_torch_in_a_real_process(tmp_path: Path) -> None:
    """A broken compiler: the layer still runs (PyTorch path) and says why; no traceback."""
    code = (
        "import torch\n"
        "from nasir.layers import adder_ext\n"
        "from nasir.layers.adder import adder2d, adder2d_unfold_reference\n"
        "x, w = torch.randn(2, 3, 6, 6), torch.randn(4, 3, 3, 3)\n"
        "err = (adder2d(x, w, None, 1, 1) - adder2d_unfold_reference(x, w, 1, 1)).abs().max()\n"
        "print(adder_ext.adder_backend(), float(err) < 1e-4, adder_ext.extension_error())\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path]),
        "NASIR_CACHE_DIR": str(tmp_path),
        "CXX": "/bin/false",
    }
    env.pop("NASIR_ADDER", None)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    backend, exact, reason = out.stdout.strip().split(" ", 2)
    assert (backend, exact) == ("torch", "True")
    assert "false" in reason


def test_input_gradient_is_skipped_when_the_input_needs_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A first layer fed with data: only the weight gradient (cheap) is computed."""
    import nasir.layers.adder as adder_module

    x, w = _operands(SHAPES[0])
    w.requires_grad_()
    grad_out = torch.randn(2, 3, 5, 6, dtype=F64)
    (expected,) = torch.autograd.grad(adder2d_unfold_reference(x, w, 1, 1), w, grad_out)

    def no_input_grad(*args: object) -> Tensor:
        raise AssertionError("the input gradient was computed")

    monkeypatch.setattr(adder_module, "adder_input_grad", no_input_grad)
    (got,) = torch.autograd.grad(adder2d(x, w, None, 1, 1), w, grad_out)
    torch.testing.assert_close(got, expected)
